"""The fused rollout kernel against `rssm.imagine` on this device, case by case (found, on an
H200, NaNs at deter = hidden = rows = 32 with 2 stages: experiments/results/gpu-h200-2).

    python experiments/gpu/kernel_check.py [--json FILE]

For `tests/test_rollout_kernel.py::test_rollout_equals_imagine`'s sizes and a few launch shapes
around them: the largest |kernel - imagine| over deter and stoch (float32 products in
both), the step at which it first exceeds 1e-4, and whether three calls on the same inputs
return the same bits (a race between the kernel's threads would show as calls that differ).
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, "tests")
from helpers import tiny_config  # noqa: E402
from planet_jax.experimental import rollout_kernel as kernels  # noqa: E402
from planet_jax.model import rssm  # noqa: E402
from planet_jax.model.networks import init_params  # noqa: E402

CASES = [  # (sizes, candidates, block, rows, warps, stages)
    (dict(), 50, 16, 32, 8, 2),  # the test's first case
    (dict(), 50, 16, 16, 8, 2),
    (dict(), 50, 16, 32, 4, 2),
    (dict(), 50, 16, 32, 8, 1),
    (dict(), 64, 16, 32, 8, 2),
    (dict(), 64, 32, 16, 8, 2),
    (dict(deter_size=72, stoch_size=5, hidden_size=40), 20, 16, 16, 8, 2),
    (dict(deter_size=40, hidden_size=100), 24, 16, 32, 8, 2),
    (dict(deter_size=64, hidden_size=64), 50, 16, 32, 8, 2),
    (dict(deter_size=64, hidden_size=32), 50, 16, 32, 8, 2),  # one-trip loops over the hidden units only
    (dict(deter_size=32, hidden_size=64), 50, 16, 32, 8, 2),  # and over the deterministic state only
]


def check(sizes, num, block, rows, warps, stages, horizon=5):
    cfg = tiny_config(horizon=horizon, **sizes)
    cell = init_params(jax.random.key(0), cfg)["cell"]
    k1, k2 = jax.random.split(jax.random.key(1))
    start = rssm.State(
        jax.random.normal(k1, (cfg.deter_size,)),
        jax.random.normal(k2, (cfg.stoch_size,)),
        jnp.zeros(cfg.stoch_size),
        jnp.ones(cfg.stoch_size),
    )
    actions = jax.random.uniform(jax.random.key(2), (num, horizon, cfg.action_size), minval=-1, maxval=1)
    key = jax.random.key(3)
    with jax.default_matmul_precision("highest"):
        batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (num, *x.shape)), start)
        want = rssm.imagine(cell, batch, actions, key, cfg=cfg)
        eps = kernels.prior_noise(key, num, horizon, cfg.stoch_size)
        run = jax.jit(
            lambda c, d, s, a, e: kernels.rollout(
                c, d, s, a, e, min_std=cfg.model.min_std, block=block, rows=rows, num_warps=warps, num_stages=stages
            )
        )
        calls = [jax.device_get(run(cell, start.deter, start.stoch, actions, eps)) for _ in range(3)]
    deter, stoch = calls[0]
    want_deter, want_stoch = np.swapaxes(np.asarray(want.deter), 0, 1), np.swapaxes(np.asarray(want.stoch), 0, 1)
    err_t = np.maximum(np.abs(deter - want_deter).max(axis=(1, 2)), np.abs(stoch - want_stoch).max(axis=(1, 2)))
    deter_err_cand = np.abs(deter - want_deter).max(axis=(0, 2))
    bad = np.nonzero(err_t > 1e-4)[0]
    return dict(
        sizes=sizes,
        candidates=num,
        block=block,
        rows=rows,
        warps=warps,
        stages=stages,
        max_abs_diff=float(err_t.max()),
        max_abs_diff_per_step=[float(e) for e in err_t],
        deter_diff_per_step=[float(e) for e in np.abs(deter - want_deter).max(axis=(1, 2))],
        stoch_diff_per_step=[float(e) for e in np.abs(stoch - want_stoch).max(axis=(1, 2))],
        first_step_over_tolerance=int(bad[0]) if len(bad) else None,
        candidates_over_tolerance=[int(i) for i in np.nonzero(deter_err_cand > 1e-4)[0]][:64],
        calls_identical=all(np.array_equal(c[0], deter) and np.array_equal(c[1], stoch) for c in calls[1:]),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"device {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    records = []
    for case in CASES:
        try:
            record = check(*case)
        except Exception as exc:  # record and go on
            record = dict(case=repr(case), error=f"{type(exc).__name__}: {exc}"[:1000])
        records.append(record)
        print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=jax.devices()[0].device_kind, jax=jax.__version__, records=records), f, indent=2)


if __name__ == "__main__":
    main()
