"""Training state and the optimizer.

`TrainState` holds arrays only (parameters, optimizer state, RNG key, step), so it can
be vmapped over a leading seed axis, donated to jit, and saved by orbax as it is. The
optimizer itself is rebuilt from the config wherever it is needed (it holds no state).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from planet_jax import sweeps
from planet_jax.config import Config
from planet_jax.model.networks import init_params


@struct.dataclass
class TrainState:
    """params: the world model's pytree; opt_state: Adam's moments; key: typed PRNG key; step: int32."""

    params: dict
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array
    hyper: dict
    """float32 scalars of the sweepable fields (`sweeps.SWEEPABLE`): one agent's hyperparameters."""


def default_hyper(cfg: Config) -> dict:
    """The config's values of the sweepable fields, as float32 scalars."""
    return {k: jnp.float32(v) for k, v in sweeps.hyper_values(cfg).items()}


def scale_by_tf1_adam(eps: float | jax.Array, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
    """Adam's direction as TF1's `tf.train.AdamOptimizer` computes it (the official code's optimizer).

    m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2, direction
    sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps): eps is added before the bias
    correction (Kingma & Ba's eps-hat), where `optax.scale_by_adam` adds it after. The state
    is optax's `ScaleByAdamState`, so checkpoints have the same structure in both forms.
    """

    def init(params):
        mu, nu = (jax.tree.map(jnp.zeros_like, params) for _ in range(2))
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

    def update(grads, state, params=None):
        del params
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, grads)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        direction = jax.tree.map(lambda m, v: correction * m / (jnp.sqrt(v) + eps), mu, nu)
        return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: Config, hyper: dict | None = None) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip) then Adam(learning_rate, eps=adam_eps), as the official code.

    `adam_form` says where eps goes (`tf1`: `scale_by_tf1_adam`; `optax`: `optax.adam`).
    With `hyper` (traced per-agent values) the same chain uses those numbers; the optimizer
    state's structure depends on neither.
    """
    h = default_hyper(cfg) if hyper is None else hyper
    if cfg.optim.adam_form == "tf1":
        adam = optax.chain(scale_by_tf1_adam(h["adam_eps"]), optax.scale_by_learning_rate(h["learning_rate"]))
    else:
        adam = optax.adam(h["learning_rate"], eps=h["adam_eps"])
    return optax.chain(optax.clip_by_global_norm(h["grad_clip"]), adam)


def create_train_state(key: jax.Array, hyper: dict | None = None, *, cfg: Config) -> TrainState:
    """Fresh parameters and optimizer state. Vmap over keys (and hyper) for a seed axis."""
    hyper = default_hyper(cfg) if hyper is None else hyper
    k_params, k_state = jax.random.split(key)
    params = init_params(k_params, cfg)
    opt_state = make_optimizer(cfg, hyper).init(params)
    return TrainState(params, opt_state, k_state, jnp.zeros((), jnp.int32), hyper)
