"""Where a paper-size action's time goes, and which rollout form is fastest, on this device.

    python experiments/gpu/breakdown.py [--repeats 10] [--json FILE] [--hlo-dir DIR]
    python experiments/gpu/breakdown.py --pick FILE   # the fastest correct form, as --set flags

Times `act` (posterior update + CEM, paper settings, cheetah-run pixels) in each rollout
form: XLA's scan with each `planner.reward_pass` (per_step, after), and the experimental
fused Pallas kernel (`planet_jax.experimental.rollout_kernel.act`) with a few launch
shapes, for 1 and 4
environments, all cases in turns (repeat by repeat), and the parts:
a jitted no-op (the dispatch floor), the posterior update alone, the search alone, and
`act` and the search at H=1, I=1 (one rollout step: the fixed cost), the posterior
update with lax convolutions (cuDNN) in place of the matmul forms. With --hlo-dir it writes
each form's optimised HLO for one environment and prints its count of top-level kernels
(fusions, library calls such as cuBLAS GEMMs, sorts), the figure that sets a search's
speed when it is bound by kernel latency. For each Pallas form it first checks the compiled
kernel against `rssm.imagine` at paper size (`max_abs_diff_vs_imagine`; run.sh picks no
form above 1e-3). Medians in milliseconds; same keys everywhere. `--pick` prints the
fastest XLA form (what `bench planner` can run) as --set flags, and reports the fastest
correct kernel launch beside it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import bench
from planet_jax import config as C
from planet_jax.agent.planner import act, observe_step, plan_batch, unroll_steps
from planet_jax.experimental import rollout_kernel
from planet_jax.model import rssm
from planet_jax.model.networks import init_params

# (planner overrides, kernel launch shape or None, also with the batch of environments): the
# XLA scan with each reward pass, and the Pallas kernel with a few launch shapes (its speed on
# a GPU is not known until it runs: 16 candidates per program gives 63 programs for J = 1000,
# 32 gives 32; these shapes compile for sm_90a with at most 392 bytes of spills,
# experiments/results/triton-sm90).
FORMS = (
    (dict(reward_pass="per_step"), None, False),
    (dict(reward_pass="after"), None, True),
    (dict(), dict(block=16, warps=8, stages=2, rows=16), True),
    (dict(), dict(block=32, warps=8, stages=2, rows=16), True),
    (dict(), dict(block=16, warps=4, stages=1, rows=16), False),
    (dict(), dict(block=16, warps=4, stages=2, rows=32), False),
)


def kernel_error(params, cfg, launch: rollout_kernel.Launch) -> float:
    """Largest |kernel - imagine| over the states of a paper-size rollout (J candidates, H
    steps, random actions and start), with float32 products in both (TF32 by default on a
    GPU would let them drift apart legitimately). A kernel that is fast but wrong shows here."""
    p = cfg.planner
    k1, k2, k3, k4 = jax.random.split(jax.random.key(7), 4)
    start = rssm.State(
        jax.random.normal(k1, (cfg.deter_size,)),
        jax.random.normal(k2, (cfg.stoch_size,)),
        jnp.zeros(cfg.stoch_size),
        jnp.ones(cfg.stoch_size),
    )
    actions = jax.random.uniform(k3, (p.num_candidates, p.horizon, cfg.action_size), minval=-1, maxval=1)
    cell = params["cell"]

    def reference(cell, start, actions, key):
        batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (p.num_candidates, *x.shape)), start)
        return jnp.swapaxes(rssm.imagine(cell, batch, actions, key, cfg=cfg).features, 0, 1)

    with jax.default_matmul_precision("highest"):
        got = jax.jit(functools.partial(rollout_kernel.features, cfg=cfg, launch=launch))(cell, start, actions, k4)
        want = jax.jit(reference)(cell, start, actions, k4)
    return float(jnp.abs(got - want).max())


def kernel_counts(hlo: str) -> dict[str, dict[str, int]]:
    """Ops that launch work in an optimised HLO module, per computation that runs them: the
    entry and each while loop's body (counted once: a body runs once per iteration).
    Fusions are counted by kind (a GEMM fusion is `fusion:kCustom`), custom calls by
    target (`__cublas$lt$matmul`), everything else by opcode."""
    bodies = set(re.findall(r"body=%([\w.\-]+)", hlo))
    counts: dict[str, collections.Counter] = {}
    current = None
    for line in hlo.splitlines():
        head = re.match(r"^(ENTRY )?%([\w.\-]+) .*\{\s*$", line)
        if head:
            current = "entry" if head.group(1) else (f"while body {head.group(2)}" if head.group(2) in bodies else None)
            continue
        m = re.match(r"^\s+(ROOT )?%[\w.\-]+ = (\([^()]*\)|\S+) ([\w\-]+)\(", line)
        if current is None or not m:
            continue
        op = m.group(3)
        if op == "fusion":
            kind = re.search(r"kind=(\w+)", line)
            op = f"fusion:{kind.group(1) if kind else '?'}"
        elif op == "custom-call":
            target = re.search(r'custom_call_target="([^"]+)"', line)
            op = f"custom-call:{target.group(1) if target else '?'}"
        if op in ("parameter", "constant", "get-tuple-element", "tuple", "bitcast"):
            continue
        counts.setdefault(current, collections.Counter())[op] += 1
    return {name: dict(c.most_common()) for name, c in counts.items()}


def fastest_form(records: list[dict]) -> dict | None:
    """The planner overrides of the fastest XLA `act` form for one environment among
    breakdown records (the forms `bench planner --set` can run; never a kernel launch).
    None if none ran."""
    ran = [r for r in records if r.get("envs") == 1 and "overrides" in r and "launch" not in r]
    return min(ran, key=lambda r: r["ms"])["overrides"] if ran else None


def fastest_kernel(records: list[dict], tolerance: float = 1e-3) -> dict | None:
    """The launch shape of the fastest kernel form for one environment, counting one only if
    its states matched `imagine`'s within `tolerance` (a number; an error string or a
    larger difference rules it out). None if none ran correctly."""

    def correct(record):
        error = record.get("max_abs_diff_vs_imagine")
        return isinstance(error, float) and error < tolerance

    ran = [r for r in records if r.get("envs") == 1 and "launch" in r and correct(r)]
    return min(ran, key=lambda r: r["ms"])["launch"] if ran else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pick", default=None, help="print the fastest correct form of a breakdown JSON as --set flags"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--envs", type=int, default=4, help="the batched case's environments")
    parser.add_argument("--json", default=None)
    parser.add_argument("--hlo-dir", default=None)
    args = parser.parse_args()
    if args.pick:
        with open(args.pick) as f:
            records = json.load(f)["records"]
        best, kernel = fastest_form(records), fastest_kernel(records)
        print(" ".join(f"--set {k}={v}" for k, v in (best or {}).items()))
        print(f"fastest correct rollout kernel launch: {kernel}", file=sys.stderr)
        return

    base = C.validate(C.preset(os.environ.get("PRESET", "paper"), "cheetah-run"))
    params = init_params(jax.random.key(0), base)
    rng = np.random.default_rng(0)

    def act_case(n, launch=None, **overrides):
        cfg = C.replace(base, **overrides)
        if launch is None:
            fn = jax.jit(lambda p, b, a, o, k: act(p, b, a, o, k, cfg=cfg, explore=True))
        else:
            shape = rollout_kernel.Launch(**launch)
            fn = jax.jit(lambda p, b, a, o, k: rollout_kernel.act(p, b, a, o, k, cfg=cfg, explore=True, launch=shape))
        obs = jax.device_put(rng.integers(0, 256, (n, *cfg.obs_shape), dtype=np.uint8))
        inputs = (params, rssm.initial((n,), cfg), jnp.zeros((n, cfg.action_size)), obs)
        return cfg, fn, inputs

    cases, meta = {}, {}
    for form, launch, envs in FORMS:
        for n in sorted({1, args.envs} if envs else {1}):
            label = " ".join(f"{k}={v}" for k, v in form.items())
            if launch is not None:
                label = "kernel " + " ".join(f"{k}={v}" for k, v in launch.items())
            name = f"act {label} envs={n}"
            cfg, fn, inputs = act_case(n, launch, **form)
            cases[name] = (fn, inputs)
            meta[name] = dict(envs=n, overrides=form) if launch is None else dict(envs=n, overrides=form, launch=launch)
            if args.hlo_dir and n == 1 and launch is None:  # (the kernel's is one custom call)
                os.makedirs(args.hlo_dir, exist_ok=True)
                text = fn.lower(*inputs, jax.random.key(0)).compile().as_text()
                with open(os.path.join(args.hlo_dir, f"act-{label.replace(' ', '-')}.hlo.txt"), "w") as f:
                    f.write(text)
                meta[name]["kernels"] = kernel_counts(text)
                print(name, "top-level kernels:", meta[name]["kernels"], flush=True)
    errors = {}  # per launch shape (the batched case runs the same kernel)
    for name in [n for n in cases if "launch" in meta[n]]:
        shape = tuple(meta[name]["launch"].items())
        if shape not in errors:
            try:
                errors[shape] = kernel_error(params, base, rollout_kernel.Launch(**meta[name]["launch"]))
            except Exception as exc:  # recorded with the timing's failures below
                errors[shape] = f"{type(exc).__name__}: {exc}"[:500]
        error = meta[name]["max_abs_diff_vs_imagine"] = errors[shape]
        print(f"{name}: max |kernel - imagine| = {error}", flush=True)
    cfg, fn, inputs = act_case(1, horizon=1, num_iterations=1)
    cases["act H=1 I=1 envs=1 (fixed cost)"] = (fn, inputs)
    cfg = base
    belief, prev, obs = rssm.initial((1,), cfg), jnp.zeros((1, cfg.action_size)), inputs[3]
    observe = jax.jit(lambda p, b, a, o, k: observe_step(p, b, a, o, k, cfg=cfg))
    cases["observe_step alone envs=1"] = (observe, (params, belief, prev, obs))
    observe_xla = C.replace(cfg, conv_impl="xla")
    observe = jax.jit(lambda p, b, a, o, k: observe_step(p, b, a, o, k, cfg=observe_xla))
    cases["observe_step alone conv_impl=xla envs=1"] = (observe, (params, belief, prev, obs))
    for name, small in (("", cfg), (" H=1 I=1", C.replace(cfg, horizon=1, num_iterations=1))):
        search = jax.jit(lambda p, b, k, small=small: plan_batch(p, b, jax.random.split(k, 1), cfg=small))
        cases[f"plan_batch alone{name} envs=1 (default)"] = (search, (params, belief))
    noop = jax.jit(lambda x, k: x + 1)
    cases["jitted no-op (dispatch floor)"] = (noop, (jnp.zeros(()),))

    first, failed = {}, {}
    for name, (fn, inputs) in list(cases.items()):
        t = time.perf_counter()
        try:
            jax.block_until_ready(fn(*inputs, jax.random.key(0)))
            jax.block_until_ready(fn(*inputs, jax.random.key(1)))
        except Exception as error:  # e.g. Triton rejecting a kernel: time the other forms
            failed[name] = f"{type(error).__name__}: {error}"[:2000]
            print(f"{name}: FAILED {failed[name][:500]}", flush=True)
            del cases[name]
            continue
        first[name] = time.perf_counter() - t
    times = {name: [] for name in cases}
    for r in range(args.repeats):
        for name, (fn, inputs) in cases.items():
            key = jax.random.key(100 + r)
            t = time.perf_counter()
            jax.block_until_ready(fn(*inputs, key))
            times[name].append(time.perf_counter() - t)
    device = bench.device_name()
    print(f"device {device}, jax {jax.__version__}, rollout_unroll {unroll_steps(base)}, repeats {args.repeats}")
    records = []
    for name in cases:
        ms = 1e3 * statistics.median(times[name])
        print(f"{name:44s} {ms:8.3f} ms  [{1e3 * min(times[name]):.3f}, {1e3 * max(times[name]):.3f}]", flush=True)
        records.append(
            dict(
                name=name,
                device=device,
                ms=ms,
                times_s=times[name],
                first_two_calls_s=first[name],
                **meta.get(name, {}),
            )
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(device=device, jax=jax.__version__, repeats=args.repeats, records=records, failed=failed),
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
