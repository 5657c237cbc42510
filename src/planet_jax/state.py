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

from planet_jax.config import Config
from planet_jax.networks import init_params


@struct.dataclass
class TrainState:
    """params: the world model's pytree; opt_state: Adam's moments; key: typed PRNG key; step: int32."""

    params: dict
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """clip_by_global_norm(grad_clip) then Adam(learning_rate, eps=adam_eps), as the paper."""
    o = cfg.optim
    return optax.chain(optax.clip_by_global_norm(o.grad_clip), optax.adam(o.learning_rate, eps=o.adam_eps))


def create_train_state(key: jax.Array, *, cfg: Config) -> TrainState:
    """Fresh parameters and optimizer state. Vmap over keys for a seed axis."""
    k_params, k_state = jax.random.split(key)
    params = init_params(k_params, cfg)
    return TrainState(params, make_optimizer(cfg).init(params), k_state, jnp.zeros((), jnp.int32))
