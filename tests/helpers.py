"""Shared test helpers: tiny configs, batches and end-to-end runs."""

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

# Metric keys that hold wall-clock figures, left out where runs are compared bit for bit.
TIMING_KEYS = frozenset({"update_seconds", "plan_ms_per_action", "time"})

# The smallest end-to-end run the tests train: the debug preset from states, 2 random
# episodes, 10 updates per cycle, 200-step episodes (cartpole: 25 agent steps).
TINY_RUN = dict(
    preset="debug",
    task="cartpole-balance",
    obs="state",
    seed_episodes=2,
    train_steps=10,
    episode_steps=200,
    progress=False,
)


def tiny_run(**fields) -> list[str]:
    """`train`'s command line for TINY_RUN with `fields` changed or added: field=value
    becomes `--field value`, True/False `--field`/`--no-field`, None leaves the flag out."""
    argv = []
    for name, value in {**TINY_RUN, **fields}.items():
        flag = name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            argv += [f"--{flag}", str(value)]
    return argv


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
