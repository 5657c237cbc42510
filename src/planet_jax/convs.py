"""Strided VALID convolutions and transposed convolutions, in forms that are fast on XLA:CPU.

All functions take x [N, H, W, C] and a kernel [k, k, C, F] (HWIO) and compute exactly the
same linear maps as `lax.conv_general_dilated(x, K, (s, s), 'VALID')` (`conv_*`) and
`lax.conv_transpose(x, K, (s, s), 'VALID')` = `flax.linen.ConvTranspose` (`deconv_*`);
`tests/test_convs.py` proves it against Flax for every form and the gradients too.

Why several forms: XLA:CPU's convolution kernels are fast for some shapes and directions
and very slow for others. Most strikingly, the weight gradient of a transposed
convolution takes seconds (4.3 s for one 6x6 64->32 layer at 250 frames), while the same
numbers come out of a matrix multiply in a fraction of that. The forms:

  conv_patches      patches (k*k strided slices, concatenated) @ K.reshape(k*k*C, F)
  conv_s2d          space-to-depth by s, then a stride-1 (k/s)x(k/s) XLA convolution
  conv_xla          lax.conv_general_dilated
  deconv_overlap    y = x @ K' [C, k*k*F] (one matmul), then an overlap-add of the k*k taps
  deconv_subpixel   the s*s output phases as one stride-1 P x P convolution (P = ceil(k/s))
                    of the (P-1)-padded input, by patches @ W, then depth-to-space
  deconv_subpixel_xla  the same phase convolution by lax.conv_general_dilated
  deconv_xla        lax.conv_transpose

`conv` and `deconv` pick, per layer shape, one form for the forward pass, one for the
input gradient and one for the weight gradient (`jax.custom_vjp`): each is the VJP of an
exact form, so the mixture is exact too. The choices come from timing each direction of
each layer of the paper's model on a 2-core Xeon at 250 frames (see `plan_conv`,
`plan_deconv`). On GPU and TPU, `impl='xla'` uses the library kernels directly.
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


def conv_s2d(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    assert k % s == 0, "space-to-depth needs the kernel size to be a multiple of the stride"
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    hp, wp = -(-h // s) * s, -(-w // s) * s
    xs = space_to_depth(jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0))), s)
    # Tap (a, b) = (s*i + p, s*j + q) of the big kernel is tap (i, j), channel (p, q, c).
    ks = kernel.reshape(k // s, s, k // s, s, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(k // s, k // s, s * s * c, f)
    y = lax.conv_general_dilated(xs, ks, (1, 1), "VALID", dimension_numbers=_DN)
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


def plan_conv(h: int, c: int, f: int, k: int, s: int) -> tuple[str, str, str]:
    """(forward, input gradient, weight gradient) forms for a convolution on XLA:CPU.

    Timing forward + both gradients of each encoder layer alone at 250 frames favoured the
    space-to-depth input gradient for the 31x31 and 14x14 layers (129 vs 147 ms, 62 vs 75),
    but inside the whole update it was slower (2.99 s vs 2.68 s per update at B=16), so
    the patches form serves every direction.
    """
    return "conv_patches", "conv_patches", "conv_patches"


def plan_deconv(h: int, c: int, f: int, k: int, s: int) -> tuple[str, str, str]:
    """(forward, input gradient, weight gradient) forms for a transposed convolution on XLA:CPU.

    Timed like `plan_conv` on the paper's decoder (ms, best first):
      5x5x128->64:  overlap everywhere 109, subpixel_xla/overlap/overlap 110
      13x13x64->32: subpixel_xla/subpixel/subpixel 229, subpixel everywhere 235, overlap/subpixel/subpixel 269
      30x30x32->3:  subpixel_xla/overlap/overlap 233, overlap everywhere 270
    The XLA weight gradient of the phase convolution is never chosen: 3.7 s to 7 s here.
    Whole update at B=16: this plan 2.68 s, the same without the XLA forward 2.74 s.
    """
    if h < 8:  # 1x1 (a dense layer in disguise) and 5x5 inputs
        return "deconv_overlap", "deconv_overlap", "deconv_overlap"
    backward = "deconv_subpixel" if f >= 8 else "deconv_overlap"
    return "deconv_subpixel_xla", backward, backward


def conv(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "cpu") -> jax.Array:
    """VALID strided convolution. impl: `cpu` (the per-direction plan) or a name in FORMS."""
    if impl == "cpu":
        n, h, w, c = x.shape
        return mixed(*plan_conv(h, c, kernel.shape[-1], kernel.shape[0], stride), stride)(x, kernel)
    return FORMS[impl](x, kernel, stride)


def deconv(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "cpu") -> jax.Array:
    """VALID strided transposed convolution (as flax ConvTranspose). impl as in `conv`."""
    if impl == "cpu":
        n, h, w, c = x.shape
        return mixed(*plan_deconv(h, c, kernel.shape[-1], kernel.shape[0], stride), stride)(x, kernel)
    return FORMS[impl](x, kernel, stride)
