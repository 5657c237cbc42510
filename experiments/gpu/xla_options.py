"""Does XLA's choice of GEMM tiles set a paper-size action's time on a GPU? `act` under a few
per-program XLA options, timed in turns in one process.

    python experiments/gpu/xla_options.py [--repeats 10] [--envs 4] [--deadline 210] [--json FILE]

Why: on an H100 the search runs about 8 kernels per rollout step at 37 us per step
(experiments/results/gpu-h100), while the same kernels at J = 100 candidates took about
1.3 us each (experiments/results/gpu-h200). So at J = 1000 most of each kernel's ~4.4 us is
the kernel itself, mostly four GEMMs of [1000 x 224]-ish by [224 x 672]-ish, each about a
microsecond of the device's TF32 rate. By default XLA's autotuner tries only its default set
of Triton tile configurations; `xla_gpu_exhaustive_tiling_search` tries all of them (smaller
tiles give more programs for M = 1000, split-K more still), and `xla_gpu_triton_gemm_any`
lets Triton take GEMMs it would hand to cuBLAS (one per step, `h_t [U | W_prior]`). For
scale, two more cases trace the same `act` with other matmul precisions: float32 products
("highest": what TF32 buys now) and bfloat16 inputs with float32 sums ("BF16_BF16_F32":
what halving them again would buy).

Each option set goes to `jax.jit(..., compiler_options=...)` (on top of the planner's own,
`planet_jax.ops.compiler.options()`: none on GPUs), so one process compares them
(paired, no drift between runs) and an option this JAX does not know fails only its own
case. For each: compile seconds (autotuning included), the top-level kernels per loop body
and outside (`breakdown.kernel_counts`), the Triton tile sizes chosen, the largest
difference of its actions from the default compilation's for the same keys (the search is
the same function; a different summation order may flip a close top-k choice, so this is
reported, not required to be 0), and median milliseconds per call for 1 and --envs
environments. Compilation stops starting new cases once --deadline seconds have gone.
PRESET=debug runs the same at debug sizes on any backend (the options are XLA:GPU's; other
backends accept and ignore them).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import bench
from planet_jax import config as C
from planet_jax.agent.planner import act
from planet_jax.model import rssm
from planet_jax.model.networks import init_params
from planet_jax.ops import compiler

# (name, XLA options, matmul precision for tracing or None); the default first: every other
# case is compared with it. The two precisions are for scale, not candidates for the default:
# "highest" (true float32 products) shows what TF32 buys now, "BF16_BF16_F32" (bfloat16
# inputs, float32 sums; plain "bfloat16" means DEFAULT, i.e. TF32 on a GPU) what halving the
# products' inputs again would (a numerics change a user would have to opt into).
CASES = (
    ("default", {}, None),
    ("exhaustive_tiling", {"xla_gpu_exhaustive_tiling_search": True}, None),
    ("precision_highest", {}, "highest"),
    (
        "exhaustive_tiling+triton_gemm_any",
        {"xla_gpu_exhaustive_tiling_search": True, "xla_gpu_triton_gemm_any": True},
        None,
    ),
    ("triton_gemm_any", {"xla_gpu_triton_gemm_any": True}, None),
    ("precision_bf16_bf16_f32", {}, "BF16_BF16_F32"),
    ("cublas_only", {"xla_gpu_enable_triton_gemm": False}, None),
)


def tile_sizes(hlo: str) -> dict[str, int]:
    """How often each Triton GEMM tile (block_m x block_n x block_k, split_k) was chosen."""
    found = collections.Counter()
    for config in re.findall(r'"triton_gemm_config":\{([^}]*)\}', hlo):
        field = dict(re.findall(r'"(\w+)":"?(\d+)"?', config))
        found[
            f"{field.get('block_m')}x{field.get('block_n')}x{field.get('block_k')} split_k {field.get('split_k')}"
        ] += 1
    return dict(found.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--envs", type=int, default=4, help="the batched case's environments")
    parser.add_argument("--deadline", type=float, default=210.0, help="no new compilation after this many seconds")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    from breakdown import kernel_counts  # beside this script (its directory is on sys.path)

    cfg = C.validate(C.preset(os.environ.get("PRESET", "paper"), "cheetah-run"))
    params = init_params(jax.random.key(0), cfg)
    rng = np.random.default_rng(0)
    inputs = {}
    for n in sorted({1, args.envs}):
        obs = jax.device_put(rng.integers(0, 256, (n, *cfg.obs_shape), dtype=np.uint8))
        inputs[n] = (params, rssm.initial((n,), cfg), jnp.zeros((n, cfg.action_size)), obs)

    def traced(precision):
        def fun(p, b, a, o, k):
            with jax.default_matmul_precision(precision) if precision else contextlib.nullcontext():
                return act(p, b, a, o, k, cfg=cfg, explore=False)[0]

        return fun

    device = bench.device_name()
    records, compiled, reference = {}, {}, {}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    dict(device=device, jax=jax.__version__, repeats=args.repeats, records=list(records.values())),
                    f,
                    indent=2,
                )

    for name, options, precision in CASES:
        record = records[name] = dict(name=name, device=device, compiler_options=options, matmul_precision=precision)
        if time.perf_counter() - start > args.deadline:
            record["skipped"] = f"past the {args.deadline:.0f} s deadline"
            print(f"{name}: {record['skipped']}", flush=True)
            continue
        try:
            t = time.perf_counter()
            # On top of the planner's own options (none on GPUs; see planet_jax.ops.compiler).
            jitted = jax.jit(traced(precision), compiler_options={**compiler.options(), **options})
            compiled[name] = {n: jitted.lower(*x, jax.random.key(0)).compile() for n, x in inputs.items()}
            record["compile_s"] = time.perf_counter() - t
            text = compiled[name][1].as_text()
            record["kernels"] = kernel_counts(text)
            record["triton_tiles"] = tile_sizes(text)
            for n, x in inputs.items():  # the same keys as the default compilation
                actions = np.asarray(compiled[name][n](*x, jax.random.key(1)))
                reference.setdefault(n, actions)
                record[f"max_abs_action_diff_vs_default_envs={n}"] = float(np.abs(actions - reference[n]).max())
        except Exception as exc:  # an option this XLA does not know, or a failed compile
            compiled.pop(name, None)
            record["failed"] = f"{type(exc).__name__}: {exc}"[:1000]
            print(f"{name}: FAILED {record['failed'][:300]}", flush=True)
            continue
        per_body = {where: sum(ops.values()) for where, ops in record["kernels"].items()}
        print(
            f"{name}: compiled in {record['compile_s']:.1f} s; kernels {per_body}; tiles {record['triton_tiles']}",
            flush=True,
        )
        save()

    times = {(name, n): [] for name in compiled for n in inputs}
    for r in range(args.repeats):  # in turns: every case once per round
        for (name, n), ts in times.items():
            key = jax.random.key(100 + r)
            t = time.perf_counter()
            jax.block_until_ready(compiled[name][n](*inputs[n], key))
            ts.append(time.perf_counter() - t)
    print(
        f"device {device}, jax {jax.__version__}, {os.environ.get('PRESET', 'paper')} settings, repeats {args.repeats}"
    )
    for (name, n), ts in times.items():
        ms = 1e3 * statistics.median(ts)
        records[name][f"ms_envs={n}"] = ms
        records[name][f"times_s_envs={n}"] = ts
        print(f"{name:36s} envs={n:<3d} {ms:8.3f} ms  [{1e3 * min(ts):.3f}, {1e3 * max(ts):.3f}]", flush=True)
    save()


if __name__ == "__main__":
    main()
