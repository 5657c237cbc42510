"""Shared test helpers: tiny configs and batches."""

import numpy as np

from planet_jax import config as C

# What every gradient update reports (per step, and averaged per cycle in metrics.jsonl).
UPDATE_METRICS = (
    "loss",
    "image_loss",
    "reward_loss",
    "kl_loss",
    "kl",
    "prior_entropy",
    "posterior_entropy",
    "grad_norm",
)


def tiny_config(obs="state", task="cartpole-balance", **overrides):
    cfg = C.replace(C.preset("debug", task), obs=obs)
    return C.validate(C.replace(cfg, **overrides)) if overrides else C.validate(cfg)


def random_batch(cfg, batch, length, seed=0, lead=()):
    """A batch of the replay's layout with optional leading axes."""
    rng = np.random.default_rng(seed)
    shape = (*lead, batch, length)
    if cfg.env.obs == "pixels":
        obs = rng.integers(0, 256, (*shape, *cfg.obs_shape), dtype=np.uint8)
    else:
        obs = rng.normal(size=(*shape, *cfg.obs_shape)).astype(np.float32)
    return {
        "obs": obs,
        "action": rng.uniform(-1, 1, (*shape, cfg.action_size)).astype(np.float32),
        "reward": rng.uniform(0, 1, shape).astype(np.float32),
    }
