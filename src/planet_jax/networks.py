"""Flax modules of the world model: encoder, decoder, reward head and the RSSM cell.

Only modules live here; `planet_jax.rssm` applies them as pure functions of a parameter
pytree. Sizes come from the config (see `config.ModelConfig`).

Convolutions have two interchangeable implementations with the same parameters (kernel
[k, k, C_in, C_out] in HWIO layout, bias [C_out]) and the same function:
  - `xla`: `lax.conv_general_dilated` / `lax.conv_transpose`, best where cuDNN or the TPU
    convolution units do the work;
  - `matmul`: the convolution as one matrix multiply over extracted patches, and the
    transposed convolution as one matrix multiply followed by an overlap-add of the k x k
    kernel taps. On XLA:CPU the weight gradient of `lax.conv_transpose` is extremely slow
    (seconds for one decoder layer); as matmuls, both gradients are plain matmuls.
`conv_impl='auto'` picks `matmul` on CPU and `xla` elsewhere. `tests/test_networks.py`
proves both equal `flax.linen.Conv` / `flax.linen.ConvTranspose` with the same weights.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from planet_jax.config import Config

# The official code uses TensorFlow's defaults: Glorot-uniform kernels, zero biases.
kernel_init = nn.initializers.xavier_uniform()


def resolve_impl(impl: str) -> str:
    if impl == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "xla"
    return impl


def dense(features: int, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, kernel_init=kernel_init, name=name)


# ----------------------------------------------------------------------------------------
# Convolutions as matrix multiplies.


def conv2d_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """VALID cross-correlation as patches @ kernel.

    x: [N, H, W, C]; kernel: [k, k, C, F] -> [N, Ho, Wo, F] with Ho = (H - k) // stride + 1.
    Equal to `lax.conv_general_dilated(x, kernel, (s, s), 'VALID')` in NHWC/HWIO.
    """
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    # Patch features ordered (a, b, c) to match kernel.reshape(k * k * C, F).
    patches = jnp.concatenate(
        [
            lax.slice(
                x, (0, a, b, 0), (n, a + stride * (ho - 1) + 1, b + stride * (wo - 1) + 1, c), (1, stride, stride, 1)
            )
            for a in range(k)
            for b in range(k)
        ],
        axis=-1,
    )
    return patches @ kernel.reshape(k * k * c, f)


def conv_transpose_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """VALID transposed convolution (as `flax.linen.ConvTranspose`) by matmul and overlap-add.

    x: [N, H, W, C]; kernel: [k, k, C, F] -> [N, Ho, Wo, F] with Ho = stride * (H - 1) + k.

    `lax.conv_transpose` without `transpose_kernel` correlates the stride-dilated input
    with the kernel, so input pixel (i, j) adds x[i, j] @ kernel[k-1-a, k-1-b] to output
    pixel (s*i + a, s*j + b). We compute every tap at once, y = x @ W with
    W [C, k*k*F] (one matmul, whose gradients are matmuls too), then add the taps into
    place. Output rows of residue r (mod s) only receive taps a = r + s*p, shifted by p,
    so each of the s*s residue classes is a sum of shifted copies (pads) of y's taps, and
    the classes are interleaved by a reshape: no scatter and no zero-stuffed arrays.
    """
    n, h, w, c = x.shape
    k, _, _, f = kernel.shape
    s = stride
    ho, wo = s * (h - 1) + k, s * (w - 1) + k
    hc, wc = -(-ho // s), -(-wo // s)  # rows and columns of one residue class
    flipped = kernel[::-1, ::-1]  # tap (a, b) of the overlap-add
    y = (x.reshape(-1, c) @ flipped.transpose(2, 0, 1, 3).reshape(c, k * k * f)).reshape(n, h, w, k, k, f)
    classes = []
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
        classes.append(jnp.stack(row, axis=3))  # [N, hc, wc, s, F]
    out = jnp.stack(classes, axis=2)  # [N, hc, s, wc, s, F]
    return out.reshape(n, hc * s, wc * s, f)[:, :ho, :wo]


def _subpixel_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """Rearrange a transposed-convolution kernel [k, k, C, F] for `conv_transpose_subpixel`.

    Returns W [P*P*C, s*s*F]: row (ma, mb, c) and column (r, q, f) hold the flipped kernel's
    tap (r + s*(P-1-ma), q + s*(P-1-mb)), or zero where that tap is past the kernel's edge.
    """
    k, _, c, f = kernel.shape
    P = math.ceil(k / s)
    flipped = kernel[::-1, ::-1]
    m = np.arange(P)[:, None]
    r = np.arange(s)[None, :]
    tap = r + s * (P - 1 - m)  # [P, s]
    valid = tap < k
    tap = np.where(valid, tap, 0)
    # W[ma, mb, c, r, q, f] = flipped[tap[ma,r], tap[mb,q], c, f] * valid[ma,r]*valid[mb,q]
    w = flipped[tap[:, None, :, None], tap[None, :, None, :]]  # [P, P, s, s, c, f]
    mask = (valid[:, None, :, None] & valid[None, :, None, :]).astype(kernel.dtype)
    w = w * mask[..., None, None]
    return w.transpose(0, 1, 4, 2, 3, 5).reshape(P * P * c, s * s * f)


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, s: int) -> jax.Array:
    """The same transposed convolution as `conv_transpose_matmul`, as a stride-1 convolution.

    Output pixels of residue (r, q) mod s form a grid that is a stride-1 correlation of the
    (P-1)-padded input with a P x P kernel (P = ceil(k / s)), so one patches @ W matmul
    computes all s*s residue grids at once and a reshape (depth-to-space) interleaves
    them. The contraction is P*P*C wide instead of C, which suits middle layers with few
    input channels (measured on XLA:CPU: 2x faster forward and backward for 13x13x64 -> 32).
    """
    n, h, w_, c = x.shape
    k, _, _, f = kernel.shape
    P = math.ceil(k / s)
    ho, wo = s * (h - 1) + k, s * (w_ - 1) + k
    hc, wc = h + P - 1, w_ + P - 1
    xp = jnp.pad(x, ((0, 0), (P - 1, P - 1), (P - 1, P - 1), (0, 0)))
    patches = jnp.concatenate([xp[:, a : a + hc, b : b + wc, :] for a in range(P) for b in range(P)], -1)
    y = patches @ _subpixel_kernel(kernel, s)  # [N, hc, wc, s*s*f]
    y = y.reshape(n, hc, wc, s, s, f).transpose(0, 1, 3, 2, 4, 5).reshape(n, hc * s, wc * s, f)
    return y[:, :ho, :wo]


def _use_subpixel(h: int, c: int, f: int) -> bool:
    # Measured on XLA:CPU at 250 frames: the sub-pixel form wins only for the decoder's
    # third layer (13x13x64 -> 32: 250 ms vs 524 ms forward and backward); the matmul +
    # overlap-add form wins for 1x1, 5x5 inputs and for 3 output channels.
    return h >= 8 and f >= 8


class Conv(nn.Module):
    """VALID, strided 2-D convolution with an implementation switch (see module doc)."""

    features: int
    kernel_size: int
    stride: int = 2
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", kernel_init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if resolve_impl(self.impl) == "matmul":
            y = conv2d_matmul(x, kernel, self.stride)
        else:
            y = lax.conv_general_dilated(
                x, kernel, (self.stride, self.stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        return y + bias


class ConvTranspose(nn.Module):
    """VALID, strided transposed convolution equal to `flax.linen.ConvTranspose`."""

    features: int
    kernel_size: int
    stride: int = 2
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", kernel_init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if resolve_impl(self.impl) == "matmul":
            if _use_subpixel(x.shape[1], x.shape[-1], self.features):
                y = conv_transpose_subpixel(x, kernel, self.stride)
            else:
                y = conv_transpose_matmul(x, kernel, self.stride)
        else:
            y = lax.conv_transpose(
                x, kernel, (self.stride, self.stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        return y + bias


# ----------------------------------------------------------------------------------------
# Encoder, decoder, reward head.


class ConvEncoder(nn.Module):
    """Frames [..., 64, 64, 3] float -> embeddings [..., 32 * depth].

    Four VALID convolutions, kernel 4, stride 2, depth * (1, 2, 4, 8) channels, ReLU:
    64 -> 31 -> 14 -> 6 -> 2, flattened to 2 * 2 * 8 * depth (1024 for depth 32).
    """

    depth: int = 32
    impl: str = "auto"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        batch = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:])
        for i, mult in enumerate((1, 2, 4, 8)):
            x = nn.relu(Conv(mult * self.depth, 4, 2, self.impl, name=f"conv{i}")(x))
        return x.reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """Features [..., F] -> image means [..., 64, 64, 3].

    Dense to 32 * depth, reshaped to 1x1, then transposed convolutions with depth * (4, 2, 1)
    channels and 3 output channels, kernels 5, 5, 6, 6, stride 2: 1 -> 5 -> 13 -> 30 -> 64.
    """

    depth: int = 32
    impl: str = "auto"

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        batch = features.shape[:-1]
        x = dense(32 * self.depth, name="dense")(features.reshape(-1, features.shape[-1]))
        x = x.reshape(-1, 1, 1, 32 * self.depth)
        layers = ((4 * self.depth, 5), (2 * self.depth, 5), (self.depth, 6), (3, 6))
        for i, (channels, k) in enumerate(layers):
            x = ConvTranspose(channels, k, 2, self.impl, name=f"deconv{i}")(x)
            if i < len(layers) - 1:
                x = nn.relu(x)
        return x.reshape(*batch, *x.shape[1:])


class MLP(nn.Module):
    """`layers` ReLU layers of `units`, then a linear output of `out` units."""

    units: int
    layers: int
    out: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(self.layers):
            x = nn.relu(dense(self.units, name=f"hidden{i}")(x))
        return dense(self.out, name="out")(x)


class RewardHead(nn.Module):
    """Features [..., F] -> reward means [...]."""

    units: int = 300
    layers: int = 3

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return MLP(self.units, self.layers, 1, name="mlp")(features)[..., 0]


# ----------------------------------------------------------------------------------------
# RSSM cell.


class GRUCell(nn.Module):
    """A GRU (the formulation of `flax.linen.GRUCell` and cuDNN) with fused gate matmuls.

    r = sigmoid(x W_r + h U_r + b_r), u = sigmoid(x W_u + h U_u + b_u),
    n = tanh(x W_n + b_n + r * (h U_n + b_hn)), h' = (1 - u) * n + u * h.
    Two matmuls per step ([.., in] @ [in, 3H] and [.., H] @ [H, 3H]) instead of six.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, h: jax.Array) -> jax.Array:
        hsize = self.features
        gx = nn.Dense(3 * hsize, kernel_init=kernel_init, name="input")(x)
        gh = nn.Dense(3 * hsize, kernel_init=nn.initializers.orthogonal(), name="hidden")(h)
        xr, xu, xn = jnp.split(gx, 3, axis=-1)
        hr, hu, hn = jnp.split(gh, 3, axis=-1)
        r = nn.sigmoid(xr + hr)
        u = nn.sigmoid(xu + hu)
        n = jnp.tanh(xn + r * hn)
        return (1.0 - u) * n + u * h


class RSSMCell(nn.Module):
    """The transition and posterior networks for the three model variants.

    rssm: h_t = GRU(h_{t-1}, relu(dense([z_{t-1}, a_{t-1}])))
          prior     p(z_t | h_t)      = N(head(relu(dense(h_t))))
          posterior q(z_t | h_t, e_t) = N(head(relu(dense([h_t, e_t]))))
    ssm:  prior     p(z_t | z_{t-1}, a_{t-1}) = N(head(relu(dense([z_{t-1}, a_{t-1}]))))
          posterior q(z_t | prior, e_t)       = N(head(relu(dense([mean, std, e_t]))))
          (the official code's SSM)
    rnn:  h_t = GRU(h_{t-1}, relu(dense([a_{t-1}, e_t]))), with e_t = 0 when predicting
          (the transition sees zeros in place of the observation, as in the official
          code's transition templates); no stochastic state.
    Heads output mean and std = softplus(.) + min_std.
    """

    variant: str
    deter_size: int
    stoch_size: int
    hidden_size: int
    min_std: float

    def setup(self):
        if self.variant in ("rssm", "rnn"):
            self.gru = GRUCell(self.deter_size)
        self.transition_in = dense(self.hidden_size)
        if self.variant == "rssm":
            self.prior_hidden = dense(self.hidden_size)
        if self.variant != "rnn":
            self.posterior_hidden = dense(self.hidden_size)
            self.prior_stats = dense(2 * self.stoch_size)
            self.posterior_stats = dense(2 * self.stoch_size)

    def _stats(self, layer: nn.Dense, hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, std = jnp.split(layer(hidden), 2, axis=-1)
        return mean, nn.softplus(std) + self.min_std

    def transition(
        self, deter: jax.Array, stoch: jax.Array, action: jax.Array, embed_size: int
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Prior step: (h_{t-1}, z_{t-1}, a_{t-1}) -> (h_t, prior mean, prior std)."""
        if self.variant == "rnn":
            zeros = jnp.zeros((*action.shape[:-1], embed_size), action.dtype)
            x = nn.relu(self.transition_in(jnp.concatenate([action, zeros], -1)))
            deter = self.gru(x, deter)
            empty = jnp.zeros((*action.shape[:-1], 0), action.dtype)
            return deter, empty, empty
        x = nn.relu(self.transition_in(jnp.concatenate([stoch, action], -1)))
        if self.variant == "ssm":
            mean, std = self._stats(self.prior_stats, x)
            return deter, mean, std
        deter = self.gru(x, deter)
        mean, std = self._stats(self.prior_stats, nn.relu(self.prior_hidden(deter)))
        return deter, mean, std

    def posterior(
        self, deter: jax.Array, prior_mean: jax.Array, prior_std: jax.Array, embed: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Posterior statistics from the prior step's outputs and the embedding e_t."""
        if self.variant == "rssm":
            x = nn.relu(self.posterior_hidden(jnp.concatenate([deter, embed], -1)))
        else:
            x = nn.relu(self.posterior_hidden(jnp.concatenate([prior_mean, prior_std, embed], -1)))
        return self._stats(self.posterior_stats, x)

    def rnn_posterior(self, deter: jax.Array, action: jax.Array, embed: jax.Array) -> jax.Array:
        """The `rnn` variant's filtering step: h_t = GRU(h_{t-1}, relu(dense([a_{t-1}, e_t])))."""
        x = nn.relu(self.transition_in(jnp.concatenate([action, embed], -1)))
        return self.gru(x, deter)

    def __call__(self, deter, stoch, action, embed):
        # Used only to create every parameter at init.
        if self.variant == "rnn":
            self.transition(deter, stoch, action, embed.shape[-1])
            return self.rnn_posterior(deter, action, embed)
        deter, mean, std = self.transition(deter, stoch, action, embed.shape[-1])
        return self.posterior(deter, mean, std, embed)


class Modules:
    """The four networks of one config; construction is cheap and holds no parameters."""

    def __init__(self, cfg: Config):
        m = cfg.model
        impl = resolve_impl(m.conv_impl)
        if cfg.env.obs == "pixels":
            self.encoder: nn.Module = ConvEncoder(m.cnn_depth, impl)
            self.decoder: nn.Module = ConvDecoder(m.cnn_depth, impl)
        else:
            self.encoder = MLP(m.state_units, m.state_layers, m.state_units)
            self.decoder = MLP(m.state_units, m.state_layers, cfg.obs_shape[0])
        self.reward = RewardHead(m.reward_units, m.reward_layers)
        self.cell = RSSMCell(m.variant, cfg.deter_size, cfg.stoch_size, m.hidden_size, m.min_std)


def init_params(key: jax.Array, cfg: Config) -> dict:
    """Parameters of every network: {'encoder', 'decoder', 'reward', 'cell'}."""
    mods = Modules(cfg)
    k_enc, k_dec, k_rew, k_cell = jax.random.split(key, 4)
    feats = jnp.zeros((1, cfg.feature_size))
    obs = jnp.zeros((1, *cfg.obs_shape))
    embed = jnp.zeros((1, cfg.embed_size))
    return {
        "encoder": mods.encoder.init(k_enc, obs)["params"],
        "decoder": mods.decoder.init(k_dec, feats)["params"],
        "reward": mods.reward.init(k_rew, feats)["params"],
        "cell": mods.cell.init(
            k_cell,
            jnp.zeros((1, cfg.deter_size)),
            jnp.zeros((1, cfg.stoch_size)),
            jnp.zeros((1, cfg.action_size)),
            embed,
        )["params"],
    }
