"""The agents of a run: every combination of a sweep's values x every seed, as rows.

A run trains `len(rows(cfg))` agents in one compiled program. Row i has a seed and the
values of the sweepable fields: those that set no array shape, so they travel as per-row
arrays (`TrainState.hyper`) instead of static config. Rows are combination-major: the
seeds of the first combination, then those of the next.
"""

from __future__ import annotations

import math

from planet_jax.config import Config, ConfigError, zero_allowed

# The sweepable fields and the config group each lives in.
SWEEPABLE: dict[str, str] = {
    "learning_rate": "optim",
    "adam_eps": "optim",
    "grad_clip": "optim",
    "free_nats": "loss",
    "image_scale": "loss",
    "reward_scale": "loss",
    "kl_scale": "loss",
    "overshooting_kl_scale": "loss",
    "exploration_noise": "planner",
}


def hyper_values(cfg: Config) -> dict[str, float]:
    """The sweepable fields' values in `cfg` (one agent's hyperparameters without a sweep)."""
    return {name: float(getattr(getattr(cfg, group), name)) for name, group in SWEEPABLE.items()}


def combos(cfg: Config) -> list[dict[str, float]]:
    """Every combination of the sweep's values (one empty dict without a sweep), in order.

    `cfg.train.sweep` holds entries NAME=V1,V2,...; the first entry varies slowest.
    """
    found: list[dict[str, float]] = [{}]
    for entry in cfg.train.sweep:
        name, _, values = entry.partition("=")
        name = name.strip().replace("-", "_")
        if name not in SWEEPABLE or not values:
            raise ConfigError(
                f"sweep entries are NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}; got {entry!r}."
            )
        try:
            parsed = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"sweep values of {name} must be numbers, got {values!r}.") from None
        for v in parsed:
            if v < 0 or (v == 0 and not zero_allowed(name)) or not math.isfinite(v):
                raise ConfigError(f"sweep value {name}={v:g} is out of range.")
        found = [{**c, name: v} for c in found for v in parsed]
    return found


def rows(cfg: Config) -> list[tuple[int, dict[str, float]]]:
    """The agents of a run: (seed, hyperparameters) for every combination x seed, combination-major."""
    base = hyper_values(cfg)
    return [(cfg.train.seed + i, {**base, **combo}) for combo in combos(cfg) for i in range(cfg.train.num_seeds)]


def row_name(cfg: Config, index: int) -> str:
    """`seed-S`, or `NAME=V,...-seed-S` within a sweep: the name of row `index`'s directories."""
    seed, hyper = rows(cfg)[index]
    combo = combos(cfg)[index // cfg.train.num_seeds]
    prefix = ",".join(f"{k}={hyper[k]:g}" for k in combo)
    return f"{prefix}-seed-{seed}" if prefix else f"seed-{seed}"
