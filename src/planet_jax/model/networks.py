"""Flax modules of the world model: encoder, decoder, reward head and the RSSM cell.

Only modules live here; `planet_jax.model.rssm` applies them as pure functions of a parameter
pytree. Sizes come from the config (see `config.ModelConfig`).

Convolutions keep Flax's parameters (kernel [k, k, C_in, C_out] in HWIO layout, bias
[C_out]) and function, with two implementations (`ModelConfig.conv_impl`):
  - `xla`: `lax.conv_general_dilated` / `lax.conv_transpose` (cuDNN on GPU, TPUs);
  - `cpu`: exact reformulations as matrix multiplies and stride-1 convolutions, chosen per
    layer and per direction (see `planet_jax.ops.convs`), because XLA:CPU's transposed
    convolution weight gradient alone takes seconds per decoder layer.
`auto` picks `cpu` on CPU and GPU (where it is also the faster) and `xla` on TPU.
`tests/test_convs.py` proves both equal `flax.linen.Conv` / `flax.linen.ConvTranspose`
with the same weights.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from planet_jax.config import Config
from planet_jax.ops import backends, convs, rng

# The official code uses TensorFlow's defaults: Glorot-uniform kernels, zero biases.
kernel_init = nn.initializers.xavier_uniform()


def dense(features: int, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, kernel_init=kernel_init, name=name)


class Conv(nn.Module):
    """VALID, strided 2-D convolution, or with `transpose` the transposed convolution of
    `flax.linen.ConvTranspose`, with an implementation switch (see module doc)."""

    features: int
    kernel_size: int
    stride: int = 2
    impl: str = "auto"
    transpose: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", kernel_init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        fn, xla_form = (convs.deconv, "deconv_xla") if self.transpose else (convs.conv, "conv_xla")
        return fn(x, kernel, self.stride, "matmul" if backends.conv_impl(self.impl) == "matmul" else xla_form) + bias


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
            x = Conv(channels, k, 2, self.impl, transpose=True, name=f"deconv{i}")(x)
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
    """The GRU of the official RSSM, `tf.contrib.rnn.GRUBlockCell`: x [..., in], h [..., H] -> h' [..., H].

    [r, u] = sigmoid([x, h] W_g + b_g)          gates: kernel [in + H, 2H], bias [2H] = 1.0
    c      = tanh([x, r * h] W_c + b_c)         candidate: kernel [in + H, H], bias [H] = 0.0
    h'     = (1 - u) * c + u * h
    The reset gate scales h before the candidate's matrix (unlike `flax.linen.GRUCell` and
    cuDNN, which scale h U after it), and the gate biases start at 1.0, so both gates start
    half to three quarters open. Kernels are Glorot-uniform over their whole [in + H, .]
    shape, as TF1's default initializer draws them.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, h: jax.Array) -> jax.Array:
        gates = nn.Dense(2 * self.features, kernel_init=kernel_init, bias_init=nn.initializers.ones, name="gates")
        candidate = dense(self.features, name="candidate")
        r, u = jnp.split(nn.sigmoid(gates(jnp.concatenate([x, h], -1))), 2, axis=-1)
        c = jnp.tanh(candidate(jnp.concatenate([x, r * h], -1)))
        return (1.0 - u) * c + u * h


class Cell(nn.Module):
    """The transition and posterior networks of one model variant; one class per variant.

    transition(h_{t-1}, z_{t-1}, a_{t-1}, E) -> (h_t, prior mean, prior std)
    filter(h_{t-1}, z_{t-1}, a_{t-1}, e_t)   -> (h_t, prior mean, prior std, post mean, post std)

    Shapes [..., D], [..., S], [..., A], [..., E]. A variant without a deterministic path
    (`ssm`) keeps D = 0, one without a stochastic state (`rnn`) S = 0: its arrays are empty,
    so the functions of `rssm` serve every variant. Heads output mean and
    std = softplus(.) + min_std.
    """

    deter_size: int
    stoch_size: int
    hidden_size: int
    min_std: float

    def _stats(self, layer: nn.Dense, hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, std = jnp.split(layer(hidden), 2, axis=-1)
        return mean, nn.softplus(std) + self.min_std

    def __call__(self, deter, stoch, action, embed):
        # Used only to create every parameter at init.
        return self.filter(deter, stoch, action, embed)


class RSSMCell(Cell):
    """The paper's recurrent state-space model (eq. 4):

    h_t = GRU(h_{t-1}, relu(dense([z_{t-1}, a_{t-1}])))
    prior     p(z_t | h_t)      = N(head(relu(dense(h_t))))
    posterior q(z_t | h_t, e_t) = N(head(relu(dense([h_t, e_t]))))
    """

    def setup(self):
        self.gru = GRUCell(self.deter_size)
        self.transition_in = dense(self.hidden_size)
        self.prior_hidden = dense(self.hidden_size)
        self.posterior_hidden = dense(self.hidden_size)
        self.prior_stats = dense(2 * self.stoch_size)
        self.posterior_stats = dense(2 * self.stoch_size)

    def transition(self, deter, stoch, action, embed_size: int):
        deter = self.gru(nn.relu(self.transition_in(jnp.concatenate([stoch, action], -1))), deter)
        return deter, *self._stats(self.prior_stats, nn.relu(self.prior_hidden(deter)))

    def filter(self, deter, stoch, action, embed):
        deter, p_mean, p_std = self.transition(deter, stoch, action, embed.shape[-1])
        x = nn.relu(self.posterior_hidden(jnp.concatenate([deter, embed], -1)))
        return deter, p_mean, p_std, *self._stats(self.posterior_stats, x)


class SSMCell(Cell):
    """The purely stochastic state-space model (the official code's SSM; D = 0):

    prior     p(z_t | z_{t-1}, a_{t-1}) = N(head(relu(dense([z_{t-1}, a_{t-1}]))))
    posterior q(z_t | prior, e_t)       = N(head(relu(dense([mean, std, e_t]))))
    """

    def setup(self):
        self.transition_in = dense(self.hidden_size)
        self.posterior_hidden = dense(self.hidden_size)
        self.prior_stats = dense(2 * self.stoch_size)
        self.posterior_stats = dense(2 * self.stoch_size)

    def transition(self, deter, stoch, action, embed_size: int):
        x = nn.relu(self.transition_in(jnp.concatenate([stoch, action], -1)))
        return deter, *self._stats(self.prior_stats, x)

    def filter(self, deter, stoch, action, embed):
        deter, p_mean, p_std = self.transition(deter, stoch, action, embed.shape[-1])
        x = nn.relu(self.posterior_hidden(jnp.concatenate([p_mean, p_std, embed], -1)))
        return deter, p_mean, p_std, *self._stats(self.posterior_stats, x)


class RNNCell(Cell):
    """The purely deterministic model (S = 0): h_t = GRU(h_{t-1}, relu(dense([a_{t-1}, e_t]))),
    with e_t = 0 when predicting (the transition sees zeros in place of the observation, as
    in the official code's transition templates). Its prior and posterior are empty, so the
    KL term is zero."""

    def setup(self):
        self.gru = GRUCell(self.deter_size)
        self.transition_in = dense(self.hidden_size)

    def _step(self, deter, action, embed):
        return self.gru(nn.relu(self.transition_in(jnp.concatenate([action, embed], -1))), deter)

    def transition(self, deter, stoch, action, embed_size: int):
        zeros = jnp.zeros((*action.shape[:-1], embed_size), action.dtype)
        empty = jnp.zeros((*action.shape[:-1], 0), action.dtype)
        return self._step(deter, action, zeros), empty, empty

    def filter(self, deter, stoch, action, embed):
        empty = jnp.zeros((*action.shape[:-1], 0), action.dtype)
        return self._step(deter, action, embed), empty, empty, empty, empty


CELLS: dict[str, type[Cell]] = {"rssm": RSSMCell, "ssm": SSMCell, "rnn": RNNCell}


class Modules:
    """The four networks of one config; construction is cheap and holds no parameters."""

    def __init__(self, cfg: Config):
        m = cfg.model
        impl = backends.conv_impl(m.conv_impl)
        if cfg.env.obs == "pixels":
            self.encoder: nn.Module = ConvEncoder(m.cnn_depth, impl)
            self.decoder: nn.Module = ConvDecoder(m.cnn_depth, impl)
        else:
            self.encoder = MLP(m.state_units, m.state_layers, m.state_units)
            self.decoder = MLP(m.state_units, m.state_layers, cfg.obs_shape[0])
        self.reward = RewardHead(m.reward_units, m.reward_layers)
        self.cell = CELLS[m.variant](cfg.deter_size, cfg.stoch_size, m.hidden_size, m.min_std)


@functools.partial(jax.jit, static_argnames="cfg")
def init_params(key: jax.Array, cfg: Config) -> dict:
    """Parameters of every network: {'encoder', 'decoder', 'reward', 'cell'}.

    Compiled, because Flax's `init` runs each network forward once, which op by op is slow
    for the matmul conv forms (compiled, XLA drops the unused outputs). A `jax.random.key`
    is re-wrapped as `rng.key` makes keys (`rng.fast`, the same draws): on CPU its hash has
    no Threefry `while` loop per parameter, which is slow to compile (experiments/results/README.md#modelnetworkspy-init_params-compiled-with-the-unrolled-hash).
    """
    mods = Modules(cfg)
    k_enc, k_dec, k_rew, k_cell = jax.random.split(rng.fast(key), 4)
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
