"""The unrolled Threefry hash (`planet_jax.ops.rng`) against jax.random's CPU lowering.

    python experiments/reference/rng_speed.py [--rounds 16] [--update-rounds 6] [--json FILE]

1. ns per 32-bit word and per normal, drawn [1000, 30] at a time in a 120-step scan.
2. One paper-size CEM search (`plan`) and one paper-size update (B = L = 50, pixels), each
   compiled twice: with keys made by `rng.key` (the library) and by `jax.random.key`
   (jax.random's own lowering), timed in turns; the results must be identical.
Start Python with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 to match the entry points.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import config as C
from planet_jax.agent.planner import plan
from planet_jax.bench import _random_batch, device_name
from planet_jax.model import rssm
from planet_jax.model.networks import init_params
from planet_jax.model.state import create_train_state
from planet_jax.model.update import scan_updates
from planet_jax.ops import rng


def _once(fn, *args):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def per_number(wrap) -> dict:
    def draws(key, draw):
        def body(total, k):
            return total + draw(wrap(k)).sum(), None

        return jax.lax.scan(body, jnp.zeros((), jnp.float32), jax.random.split(key, 120))[0]

    out = {}
    for name, draw in (
        ("bits", lambda k: jax.random.bits(k, (1000, 30)).astype(jnp.float32)),
        ("normal", lambda k: jax.random.normal(k, (1000, 30))),
    ):
        fn = jax.jit(functools.partial(draws, draw=draw))
        _once(fn, jax.random.key(0))
        out[f"{name}_ns"] = 1e9 * min(_once(fn, jax.random.key(0)) for _ in range(7)) / (120 * 30000)
    return out


def in_turns(fns: dict, args: tuple, rounds: int) -> dict:
    times = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            times[name].append(_once(fns[name], *args))
    new, old = times["rng.key"], times["jax.random"]
    return {
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_median": statistics.median(n / o for n, o in zip(new, old)),
        "times_s": times,
    }


def both(make):
    """(with keys made by rng.key, with keys made by jax.random.key): each traced and compiled here."""
    return make(rng.key), make(jax.random.key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--update-rounds", type=int, default=6)
    parser.add_argument("--json")
    args = parser.parse_args()
    cfg = C.validate(C.preset("paper", "cheetah-run"))
    record = {"device": device_name(), "jax": jax.__version__}
    record["per_number"] = {"jax.random": per_number(lambda k: k), "rng.key": per_number(rng.fast)}
    print(json.dumps(record["per_number"]))

    params = init_params(rng.key(0), cfg)

    def plan_args(key):
        return (params, rssm.initial((), cfg), key(3))

    def make_plan(key):
        fn = jax.jit(functools.partial(plan, cfg=cfg)).lower(*plan_args(key)).compile()
        return lambda *_: fn(*plan_args(key))

    fast, plain = both(make_plan)
    assert np.array_equal(fast(), plain()), "different actions"
    record["plan"] = in_turns({"jax.random": plain, "rng.key": fast}, (), args.rounds)
    print("plan", record["plan"]["median_s"], "ratio", round(record["plan"]["ratio_median"], 3))

    batches = jax.device_put(_random_batch(cfg, (1, 50, 50), np.random.default_rng(0)))

    def make_update(key):
        state = create_train_state(key(0), cfg=cfg)
        fn = jax.jit(functools.partial(scan_updates, cfg=cfg)).lower(state, batches).compile()
        return lambda *_: fn(state, batches)

    fast, plain = both(make_update)
    a, b = fast()[0].params, plain()[0].params
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))), "different parameters"
    record["update"] = in_turns({"jax.random": plain, "rng.key": fast}, (), args.update_rounds)
    print("update", record["update"]["median_s"], "ratio", round(record["update"]["ratio_median"], 3))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
