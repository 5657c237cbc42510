"""The jitted gradient update: C steps of Adam on the ELBO as one `lax.scan`.

  train_step(state, batch, cfg) -> (state, metrics)       one gradient step
  update(state, batches, cfg)   -> (state, metrics [C])   C steps, jitted, state donated

Batches come from the host replay as uint8 frames; preprocessing (5-bit quantisation and
dequantisation noise) happens on device inside the step, with the state's key.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from planet_jax.config import Config
from planet_jax.model.losses import world_model_loss
from planet_jax.model.state import TrainState, make_optimizer


def train_step(state: TrainState, batch: dict, *, cfg: Config) -> tuple[TrainState, dict]:
    """One gradient step. batch: obs [B, T, ...], action [B, T, A], reward [B, T].

    metrics["finite"] says whether the loss and every gradient were finite. With
    `skip_nonfinite`, a non-finite step leaves parameters and optimizer state unchanged
    (metrics["skipped"] = 1); otherwise the host stops the run (see `train.check_finite`).
    """
    key, k_loss = jax.random.split(state.key)
    grads, metrics = jax.grad(world_model_loss, has_aux=True)(state.params, batch, k_loss, cfg=cfg, hyper=state.hyper)
    updates, opt_state = make_optimizer(cfg, state.hyper).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
    skipped = jnp.zeros((), jnp.int32)
    if cfg.train.skip_nonfinite:
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree.map(keep, params, state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
        skipped = (~finite).astype(jnp.int32)
    metrics.update(grad_norm=grad_norm, finite=finite, skipped=skipped)
    return state.replace(params=params, opt_state=opt_state, key=key, step=state.step + 1), metrics


def scan_updates(state: TrainState, batches: dict, *, cfg: Config) -> tuple[TrainState, dict]:
    """len(batches) gradient steps as one scan. batches: obs [C, B, T, ...] etc.

    Returns the new state and metrics with a leading [C] axis.
    """
    return jax.lax.scan(functools.partial(train_step, cfg=cfg), state, batches)


# The compiled entry point: one trace per (config, shapes); the state is donated so its
# buffers are reused in place. (JAX's default compiler options: unlike the planner's, the
# update was no faster with XLA's own matrix products on CPUs; see `planet_jax.ops.compiler`.)
update = jax.jit(scan_updates, static_argnames="cfg", donate_argnums=0)
