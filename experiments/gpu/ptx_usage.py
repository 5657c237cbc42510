"""Compile the fused rollout kernel for an H100 (sm_90a) on a machine without a GPU, and
report what each launch shape needs: registers and stack (spills) per thread, shared memory.

    python3 -m venv /tmp/triton && /tmp/triton/bin/pip install triton
    .venv/bin/python experiments/gpu/ptx_usage.py --triton-python /tmp/triton/bin/python \\
        [--json FILE] [--set block=16,32 --set warps=4,8 --set stages=1,2 --set rows=16,32]

How: Pallas prints the kernel's Triton IR (`debug=True`) while JAX lowers the paper-size
rollout for CUDA; the IR is handed as text to the `triton` package of another Python
(`triton.compile` with target cuda:90 needs no GPU and carries its own ptxas), and
`cuobjdump -res-usage` reads the resources from the cubin. The device image's JAX ships its
own Triton inside XLA, so the figures are this Triton's, not necessarily the device's;
they show spills (stack bytes) and shared memory over the H100's 227 KB before any device
time is spent. Nothing is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import tempfile
from unittest import mock

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from planet_jax import config as C
from planet_jax.experimental import rollout_kernel
from planet_jax.model import rssm
from planet_jax.model.networks import init_params

COMPILE = r"""
import json, sys, triton
from triton.backends.compiler import GPUTarget
k = triton.compile(sys.argv[1], target=GPUTarget("cuda", 90, 32),
                   options=dict(num_warps=int(sys.argv[2]), num_stages=int(sys.argv[3])))
open(sys.argv[1] + ".cubin", "wb").write(k.asm["cubin"])
print(json.dumps(dict(shared=k.metadata.shared, triton=triton.__version__)))
"""


def triton_ir(fn, *args) -> list[str]:
    """The Triton IR of every Pallas kernel in fn, as parseable text (locations stripped)."""
    original = pl.pallas_call
    printed = io.StringIO()

    def with_debug(*a, **k):
        return original(*a, **{**k, "debug": True})

    with (
        mock.patch.object(pl, "pallas_call", with_debug),
        mock.patch("jax.default_backend", return_value="gpu"),
        contextlib.redirect_stdout(printed),
    ):
        jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",))
    lines = printed.getvalue().splitlines()
    modules = []
    for i, line in enumerate(lines):
        if line.startswith("module @"):
            end = next(j for j in range(i, len(lines)) if lines[j].startswith("}"))
            body = []
            for text in lines[i : end + 1]:
                text = text.replace(" [unknown]", "")
                text = re.sub(r' "[^"]*"\(#loc[0-9]*\)$', "", text)
                text = re.sub(r" #loc[0-9]*$", "", text)
                body.append(re.sub(r" \[[^\]]*\]$", "", text))
            modules.append("\n".join(body) + "\n")
    return modules


def resources(ir: str, python: str, warps: int, stages: int, workdir: str) -> dict:
    path = os.path.join(workdir, hashlib.md5(ir.encode()).hexdigest()[:10] + ".ttir")
    with open(path, "w") as f:
        f.write(ir)
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    run = subprocess.run(
        [python, "-c", COMPILE, path, str(warps), str(stages)], capture_output=True, text=True, env=env
    )
    if run.returncode:
        return dict(error=run.stderr.strip().splitlines()[-1][:500])
    info = json.loads(run.stdout.strip().splitlines()[-1])
    site = subprocess.run(
        [python, "-c", "import triton, os; print(os.path.dirname(triton.__file__))"], capture_output=True, text=True
    )
    cuobjdump = glob.glob(os.path.join(site.stdout.strip(), "backends/nvidia/bin/cuobjdump"))[0]
    usage = subprocess.run([cuobjdump, "-res-usage", path + ".cubin"], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", usage)
    return dict(
        registers=int(m[1]), stack_bytes=int(m[2]), shared_bytes=info["shared"] + int(m[3]), triton=info["triton"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triton-python", required=True, help="a Python with the triton package")
    parser.add_argument("--preset", default="paper")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="block=16,32 etc. (fields of rollout_kernel.Launch): every combination",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    cfg = C.replace(C.preset(args.preset), obs="state")  # the same cell; a state model initialises fast
    cell = init_params(jax.random.key(0), cfg)["cell"]
    p = cfg.planner
    grid = dict(block=[16, 32], warps=[4, 8], stages=[1, 2], rows=[16, 32])
    for item in args.set:
        name, values = item.split("=")
        grid[name] = [int(v) for v in values.split(",")]
    records = []
    with tempfile.TemporaryDirectory() as workdir:
        for combo in itertools.product(*grid.values()):
            setting = dict(zip(grid, combo))
            fn = functools.partial(rollout_kernel.features, cfg=cfg, launch=rollout_kernel.Launch(**setting))
            (ir,) = triton_ir(
                fn,
                cell,
                rssm.initial((), cfg),
                jnp.zeros((p.num_candidates, p.horizon, cfg.action_size)),
                jax.random.key(0),
            )
            record = dict(setting, **resources(ir, args.triton_python, setting["warps"], setting["stages"], workdir))
            records.append(record)
            print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(preset=args.preset, target="cuda sm_90a", jax=jax.__version__, records=records), f, indent=2)


if __name__ == "__main__":
    main()
