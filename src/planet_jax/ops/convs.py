"""Strided VALID convolutions and transposed convolutions, in forms that are fast on XLA:CPU.

All functions take x [N, H, W, C] and a kernel [k, k, C, F] (HWIO) and compute exactly the
same linear maps as `lax.conv_general_dilated(x, K, (s, s), 'VALID')` (`conv_*`) and
`lax.conv_transpose(x, K, (s, s), 'VALID')` = `flax.linen.ConvTranspose` (`deconv_*`);
`tests/test_convs.py` proves it against Flax for every form and the gradients too.

Why several forms: XLA:CPU's convolution kernels are fast for some shapes and directions
and very slow for others (the weight gradient of a transposed convolution most of all),
while the same numbers come out of matrix multiplies in a fraction of the time
(experiments/results/README.md#opsconvspy-the-convolution-forms). The forms:

  conv_patches      patches (k*k strided slices, concatenated) @ K.reshape(k*k*C, F)
  conv_s2d_patches  the same after space-to-depth: (k/s)^2 slices of s*s*C channels
  conv_s2d          space-to-depth by s, then a stride-1 (k/s)x(k/s) XLA convolution
  conv_xla          lax.conv_general_dilated
  deconv_overlap    y = x @ K' [C, k*k*F] (one matmul), then an overlap-add of the k*k taps
  deconv_subpixel   the s*s output phases as one stride-1 P x P convolution (P = ceil(k/s))
                    of the (P-1)-padded input, by patches @ W, then depth-to-space
  deconv_subpixel_xla  the same phase convolution by lax.conv_general_dilated
  deconv_xla        lax.conv_transpose

`conv` and `deconv` with impl='matmul' pick a forward form per layer shape and use
hand-written backward passes (`conv_cpu`, `deconv_cpu`, `jax.custom_vjp`) that build the
one matrix both gradients need once and take both gradients as plain matmuls (window by
window where the windows are wide, see `WIDE_WINDOW`); `mixed`
(forward by one form, each gradient as the VJP of another) serves the remaining shapes.
The choices come from timing forward + backward of each layer of the paper's model on a
2-core Xeon at 800 frames (experiments/results/README.md#code-choices). impl='xla' uses
the library kernels directly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


# ----------------------------------------------------------------------------------------
# Convolution forms.


def conv_patches(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    # Patch features ordered (a, b, c) to match kernel.reshape(k * k * C, F).
    taps = [
        lax.slice(x, (0, a, b, 0), (n, a + s * (ho - 1) + 1, b + s * (wo - 1) + 1, c), (1, s, s, 1))
        for a in range(k)
        for b in range(k)
    ]
    return jnp.concatenate(taps, axis=-1) @ kernel.reshape(k * k * c, f)


def space_to_depth(x: jax.Array, s: int) -> jax.Array:
    """[N, H, W, C] -> [N, H/s, W/s, s*s*C], channel order (row phase, column phase, c)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // s, w // s, s * s * c)


def s2d_input(x: jax.Array, s: int) -> jax.Array:
    """x [N, H, W, C] zero-padded to multiples of s, then space-to-depth: [N, ceil(H/s), ceil(W/s), s*s*C]."""
    _, h, w, _ = x.shape
    return space_to_depth(jnp.pad(x, ((0, 0), (0, -h % s), (0, -w % s), (0, 0))), s)


def s2d_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """[k, k, C, F] -> [(k/s)^2 * s^2 * C, F], rows ordered (i, j, p, q, c).

    Tap (a, b) = (s*i + p, s*j + q) of the big kernel is tap (i, j), channel (p, q, c) of
    the stride-1 kernel that reads the space-to-depth input.
    """
    k, _, c, f = kernel.shape
    m = k // s
    return kernel.reshape(m, s, m, s, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(m * m * s * s * c, f)


def conv_s2d(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    assert k % s == 0, "space-to-depth needs the kernel size to be a multiple of the stride"
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    ks = s2d_kernel(kernel, s).reshape(k // s, k // s, s * s * c, f)
    y = lax.conv_general_dilated(s2d_input(x, s), ks, (1, 1), "VALID", dimension_numbers=_DN)
    return y[:, :ho, :wo]


def conv_xla(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (s, s), "VALID", dimension_numbers=_DN)


# ----------------------------------------------------------------------------------------
# Transposed-convolution forms. `lax.conv_transpose` without `transpose_kernel` correlates
# the stride-dilated input with the kernel, so input pixel (i, j) adds x[i, j] @ K[k-1-a, k-1-b]
# to output pixel (s*i + a, s*j + b): the forms below scatter with the flipped kernel.


def deconv_overlap(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    ho, wo = s * (h - 1) + k, s * (w - 1) + k
    hc, wc = -(-ho // s), -(-wo // s)  # rows and columns of one output phase
    flipped = kernel[::-1, ::-1]
    y = (x.reshape(-1, c) @ flipped.transpose(2, 0, 1, 3).reshape(c, k * k * f)).reshape(n, h, w, k, k, f)
    # Output rows of phase r only receive taps a = r + s*p, shifted down by p: each phase
    # is a sum of shifted (padded) taps, and a reshape interleaves the phases.
    phases = []
    for r in range(s):
        row = []
        for q in range(s):
            acc = None
            for pa in range(math.ceil((k - r) / s)):
                for pb in range(math.ceil((k - q) / s)):
                    tap = y[:, :, :, r + s * pa, q + s * pb, :]
                    tap = jnp.pad(tap, ((0, 0), (pa, hc - h - pa), (pb, wc - w - pb), (0, 0)))
                    acc = tap if acc is None else acc + tap
            row.append(acc)
        phases.append(jnp.stack(row, axis=3))  # [N, hc, wc, s, F]
    out = jnp.stack(phases, axis=2)  # [N, hc, s, wc, s, F]
    return out.reshape(n, hc * s, wc * s, f)[:, :ho, :wo]


def subpixel_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """Rearrange a transposed-convolution kernel [k, k, C, F] into the phase kernel [P, P, C, s*s*F].

    Entry (ma, mb, c, (r, q, f)) is the flipped kernel's tap (r + s*(P-1-ma), q + s*(P-1-mb)),
    or zero where that tap lies past the kernel's edge (k not a multiple of s).
    """
    k, _, c, f = kernel.shape
    p = math.ceil(k / s)
    flipped = kernel[::-1, ::-1]
    m, r = np.arange(p)[:, None], np.arange(s)[None, :]
    tap = r + s * (p - 1 - m)  # [P, s]: tap index of patch offset m for phase r
    valid = tap < k
    tap = np.where(valid, tap, 0)
    w = flipped[tap[:, None, :, None], tap[None, :, None, :]]  # [P, P, s, s, C, F]
    mask = (valid[:, None, :, None] & valid[None, :, None, :]).astype(kernel.dtype)
    w = w * mask[..., None, None]
    return w.transpose(0, 1, 4, 2, 3, 5).reshape(p, p, c, s * s * f)


def _depth_to_space(y: jax.Array, s: int, f: int, ho: int, wo: int) -> jax.Array:
    n, hc, wc, _ = y.shape
    y = y.reshape(n, hc, wc, s, s, f).transpose(0, 1, 3, 2, 4, 5).reshape(n, hc * s, wc * s, f)
    return y[:, :ho, :wo]


def deconv_subpixel(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    p = math.ceil(k / s)
    hc, wc = h + p - 1, w + p - 1
    xp = jnp.pad(x, ((0, 0), (p - 1, p - 1), (p - 1, p - 1), (0, 0)))
    patches = jnp.concatenate([xp[:, a : a + hc, b : b + wc, :] for a in range(p) for b in range(p)], -1)
    y = patches @ subpixel_kernel(kernel, s).reshape(p * p * c, s * s * f)
    return _depth_to_space(y, s, f, s * (h - 1) + k, s * (w - 1) + k)


def deconv_subpixel_xla(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    p = math.ceil(k / s)
    y = lax.conv_general_dilated(
        x, subpixel_kernel(kernel, s), (1, 1), ((p - 1, p - 1), (p - 1, p - 1)), dimension_numbers=_DN
    )
    return _depth_to_space(y, s, f, s * (h - 1) + k, s * (w - 1) + k)


def deconv_xla(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    return lax.conv_transpose(x, kernel, (s, s), "VALID", dimension_numbers=_DN)


FORMS = {
    "conv_patches": conv_patches,
    "conv_s2d": conv_s2d,
    "conv_xla": conv_xla,
    "deconv_overlap": deconv_overlap,
    "deconv_subpixel": deconv_subpixel,
    "deconv_subpixel_xla": deconv_subpixel_xla,
    "deconv_xla": deconv_xla,
}


# ----------------------------------------------------------------------------------------
# Hand-written backward passes.
#
# Differentiating a form with JAX is exact but can be slow on XLA:CPU for two reasons.
# The transpose of "many slices of one array" is "many pads added together", and XLA
# evaluates such a sum of k*k pads element by element over the whole output (a large share
# of the update for the decoder's last layer). And taking the
# input and weight gradients as two separate VJPs builds their shared operand twice.
# The backward passes below build the one shared matrix once, with a single
# concatenation of slices (each output element reads one input element), and feed it
# to both gradient matmuls.


def gram(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^T b for a [M, P] and b [M, Q] with M large: a weight gradient's contraction over pixels.

    XLA:CPU runs this contraction faster when the result is [narrow, wide]
    (experiments/results/README.md#code-choices), and its simplifier rewrites (b^T a)^T
    back into a^T b, so the narrow-first product sits behind an optimization barrier.
    """
    if a.shape[1] <= b.shape[1]:
        return lax.dot_general(a, b, (((0,), (0,)), ((), ())))
    return lax.optimization_barrier(lax.dot_general(b, a, (((0,), (0,)), ((), ())))).T


def s2d_patches(x: jax.Array, k: int, s: int) -> jax.Array:
    """Patches of a VALID k x k, stride-s convolution: [N * Ho * Wo, k * k * C].

    Space-to-depth first, so the patches are (k/s)^2 slices of whole s*s*C channel rows
    rather than k*k slices of C channels: far fewer, larger copies (faster than
    `conv_patches` for the 3-channel first layer).
    """
    n, h, w, _ = x.shape
    m, ho, wo = k // s, (h - k) // s + 1, (w - k) // s + 1
    xs = s2d_input(x, s)
    taps = [xs[:, i : i + ho, j : j + wo, :] for i in range(m) for j in range(m)]
    return jnp.concatenate(taps, -1).reshape(n * ho * wo, -1)


# Patch matrices are concatenations of window slices, and XLA:CPU writes a concatenation
# several times slower per byte than a plain copy (the 13x13x64->32 layer's 623 MB phase
# matrix at about 2 GB/s). When each window is wide (at least this many channels), the
# products with the patch matrix are taken window by window instead: P W = sum_t P_t W_t
# and P^T d = [P_t^T d]_t, so only the slices are copied. For narrow windows (the first
# encoder layer's 12 channels) the many small products cost more than the concatenation.
WIDE_WINDOW = 128


def _windows_times(windows: list[jax.Array], weights: jax.Array) -> jax.Array:
    """[w_0 | w_1 | ...] @ weights as sum_t w_t @ weights[rows of t]; windows [M, c] each."""
    c = windows[0].shape[1]
    return functools.reduce(jnp.add, [wt @ weights[t * c : (t + 1) * c] for t, wt in enumerate(windows)])


def _windows_gram(windows: list[jax.Array], b: jax.Array) -> jax.Array:
    """[w_0 | w_1 | ...]^T b, one `gram` per window, stacked by rows."""
    return jnp.concatenate([gram(wt, b) for wt in windows], 0)


def s2d_windows(x: jax.Array, k: int, s: int) -> list[jax.Array]:
    """The (k/s)^2 column blocks of `s2d_patches(x, k, s)`, each [N * Ho * Wo, s*s*C]."""
    n, h, w, _ = x.shape
    m, ho, wo = k // s, (h - k) // s + 1, (w - k) // s + 1
    xs = s2d_input(x, s)
    return [xs[:, i : i + ho, j : j + wo, :].reshape(n * ho * wo, -1) for i in range(m) for j in range(m)]


def conv_s2d_patches(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    if s * s * c >= WIDE_WINDOW:
        y = _windows_times(s2d_windows(x, k, s), s2d_kernel(kernel, s))
    else:
        y = s2d_patches(x, k, s) @ s2d_kernel(kernel, s)
    return y.reshape(n, (h - k) // s + 1, (w - k) // s + 1, f)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_cpu(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    """VALID strided convolution for k divisible by s: `conv_s2d_patches` forward, and a
    backward pass that computes dK = P^T dy and dP = dy K^T from the patches P and folds
    dP back with (k/s)^2 pads (not k*k)."""
    return conv_s2d_patches(x, kernel, s)


def _conv_cpu_fwd(x, kernel, s):
    return conv_s2d_patches(x, kernel, s), (x, kernel)


def _conv_cpu_bwd(s, residuals, dy):
    x, kernel = residuals
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    m, ho, wo = k // s, (h - k) // s + 1, (w - k) // s + 1
    hs, ws = -(-h // s), -(-w // s)
    dy2 = dy.reshape(-1, f)
    # The patches are rebuilt rather than kept from the forward pass: keeping them would
    # hold ~2 GB per agent at B=50 for a few percent of speed.
    if s * s * c >= WIDE_WINDOW:
        dk_rows = _windows_gram(s2d_windows(x, k, s), dy2)
    else:
        dk_rows = gram(s2d_patches(x, k, s), dy2)
    dk = jax.vjp(lambda kk: s2d_kernel(kk, s), kernel)[1](dk_rows)[0]
    dp = (dy2 @ s2d_kernel(kernel, s).T).reshape(n, ho, wo, m * m, s * s * c)
    folds = [
        jnp.pad(dp[:, :, :, i * m + j], ((0, 0), (i, hs - ho - i), (j, ws - wo - j), (0, 0)))
        for i in range(m)
        for j in range(m)
    ]
    return _depth_to_space(functools.reduce(jnp.add, folds), s, c, h, w), dk


conv_cpu.defvjp(_conv_cpu_fwd, _conv_cpu_bwd)


def _phase_weights(kernel: jax.Array, s: int) -> jax.Array:
    """The phase kernel as a [P*P*s*s*F, C] matrix, rows ordered as `phase_windows` columns."""
    w = subpixel_kernel(kernel, s)  # [P, P, C, s*s*F]
    p, _, c, o = w.shape
    return w.transpose(0, 1, 3, 2).reshape(p * p * o, c)


def phase_windows(dy: jax.Array, h: int, w: int, k: int, s: int, split: bool = False) -> jax.Array | list[jax.Array]:
    """For a transposed convolution of an [N, h, w, C] input: [N * h * w, P*P*s*s*F].

    Row (n, i, j) holds every output value that input pixel (i, j) contributed to, as
    the P x P window of the output's phase grid (space-to-depth of dy) that the phase
    convolution of `deconv_subpixel` reads. dx = G W and dW = G^T x. With `split`, the
    P*P column blocks of G as a list, unconcatenated.
    """
    n, ho, wo, _ = dy.shape
    p = math.ceil(k / s)
    hc, wc = h + p - 1, w + p - 1
    dys = space_to_depth(jnp.pad(dy, ((0, 0), (0, s * hc - ho), (0, s * wc - wo), (0, 0))), s)
    windows = [dys[:, p - 1 - a : p - 1 - a + h, p - 1 - b : p - 1 - b + w, :] for a in range(p) for b in range(p)]
    return (
        [wt.reshape(n * h * w, -1) for wt in windows] if split else jnp.concatenate(windows, -1).reshape(n * h * w, -1)
    )


@functools.cache
def deconv_cpu(forward: str):
    """A transposed convolution (x, kernel, s) -> y computed by the form `forward`, with
    the backward pass dx = G W, dW = G^T x from one `phase_windows` matrix G."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def apply(x, kernel, s):
        return FORMS[forward](x, kernel, s)

    def apply_fwd(x, kernel, s):
        return FORMS[forward](x, kernel, s), (x, kernel)

    def apply_bwd(s, residuals, dy):
        x, kernel = residuals
        n, h, w, c = x.shape
        k, f = kernel.shape[0], kernel.shape[-1]
        weights, x2 = _phase_weights(kernel, s), x.reshape(-1, c)
        if s * s * f >= WIDE_WINDOW:
            windows = phase_windows(dy, h, w, k, s, split=True)
            dx, dk_rows = _windows_times(windows, weights), _windows_gram(windows, x2)
        else:
            g = phase_windows(dy, h, w, k, s)
            dx, dk_rows = g @ weights, gram(g, x2)
        dk = jax.vjp(lambda kk: _phase_weights(kk, s), kernel)[1](dk_rows)[0]
        return dx.reshape(n, h, w, c), dk

    apply.defvjp(apply_fwd, apply_bwd)
    return apply


FORMS["conv_s2d_patches"] = conv_s2d_patches


# ----------------------------------------------------------------------------------------
# Per-direction choice.


@functools.cache
def mixed(forward: str, input_grad: str, weight_grad: str, stride: int):
    """A function (x, kernel) -> y computed by `forward`, differentiated by the VJPs of the others.

    All forms compute the same bilinear map, so the result is exact; only the speed differs.
    """
    f_fwd, f_dx, f_dw = FORMS[forward], FORMS[input_grad], FORMS[weight_grad]

    @jax.custom_vjp
    def apply(x, kernel):
        return f_fwd(x, kernel, stride)

    def apply_fwd(x, kernel):
        return f_fwd(x, kernel, stride), (x, kernel)

    def apply_bwd(residuals, dy):
        x, kernel = residuals
        # Linear in each argument: the VJPs need no primal output, which XLA removes.
        dx = jax.vjp(lambda x_: f_dx(x_, kernel, stride), x)[1](dy)[0]
        dk = jax.vjp(lambda k_: f_dw(x, k_, stride), kernel)[1](dy)[0]
        return dx, dk

    apply.defvjp(apply_fwd, apply_bwd)
    return apply


def conv(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "matmul") -> jax.Array:
    """VALID strided convolution. impl: `matmul` (the exact fast forms) or a name in FORMS.

    `matmul` is `conv_cpu` when the kernel size is a multiple of the stride (every encoder
    layer), else the patches form: faster than the patches form differentiated by JAX for
    every encoder layer of the paper's model (experiments/results/README.md#code-choices).
    """
    if impl != "matmul":
        return FORMS[impl](x, kernel, stride)
    if kernel.shape[0] % stride == 0:
        return conv_cpu(x, kernel, stride)
    return mixed("conv_patches", "conv_patches", "conv_patches", stride)(x, kernel)


def deconv(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "matmul") -> jax.Array:
    """VALID strided transposed convolution (as flax ConvTranspose). impl as in `conv`.

    `matmul`: a 1x1 input is a dense layer in disguise, done by `deconv_overlap` (one matmul)
    and its JAX derivatives; larger inputs use `deconv_cpu`, with XLA's stride-1 phase
    convolution (`deconv_subpixel_xla`) forward from 8x8 up and the overlap form below: the
    fastest per decoder layer of the paper's model (experiments/results/README.md#code-choices).
    """
    if impl != "matmul":
        return FORMS[impl](x, kernel, stride)
    if x.shape[1] == 1 and x.shape[2] == 1:
        return mixed("deconv_overlap", "deconv_overlap", "deconv_overlap", stride)(x, kernel)
    forward = "deconv_subpixel_xla" if min(x.shape[1:3]) >= 8 else "deconv_overlap"
    return deconv_cpu(forward)(x, kernel, stride)
