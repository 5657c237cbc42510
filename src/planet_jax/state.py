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

from planet_jax import config as C
from planet_jax.config import Config
from planet_jax.networks import init_params


@struct.dataclass
class TrainState:
    """params: the world model's pytree; opt_state: Adam's moments; key: typed PRNG key; step: int32."""

    params: dict
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array
    hyper: dict
    """float32 scalars of the sweepable fields (`config.SWEEPABLE`): one agent's hyperparameters."""


def default_hyper(cfg: Config) -> dict:
    """The config's values of the sweepable fields, as float32 scalars."""
    return {k: jnp.float32(v) for k, v in C.hyper_values(cfg).items()}


def make_optimizer(cfg: Config, hyper: dict | None = None) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip) then Adam(learning_rate, eps=adam_eps), as the paper.

    With `hyper` (traced per-agent values) the same chain uses those numbers; the optimizer
    state's structure does not depend on them.
    """
    h = default_hyper(cfg) if hyper is None else hyper
    return optax.chain(optax.clip_by_global_norm(h["grad_clip"]), optax.adam(h["learning_rate"], eps=h["adam_eps"]))


def create_train_state(key: jax.Array, hyper: dict | None = None, *, cfg: Config) -> TrainState:
    """Fresh parameters and optimizer state. Vmap over keys (and hyper) for a seed axis."""
    hyper = default_hyper(cfg) if hyper is None else hyper
    k_params, k_state = jax.random.split(key)
    params = init_params(k_params, cfg)
    opt_state = make_optimizer(cfg, hyper).init(params)
    return TrainState(params, opt_state, k_state, jnp.zeros((), jnp.int32), hyper)
