"""planet_jax's `bench update` and Kaixhin/PlaNet's own models in turns, one JSON per round.

Each round runs both sides once, one after the other (the order swaps every round, so
neither always runs second on a warmer machine), as separate processes under the same
malloc setting, and writes `OUT/round-K.json` with both sides' records (per-call times
included) and their ratio; `OUT/summary.json` and the printed table give every round's
medians. Optionally `bench planner` (planet_jax only: its matmul-rate fraction) ends
each round.

  python experiments/reference/alternate.py OUT --torch-python /work/kx/.venv/bin/python \\
      --models /work/kx/code --rounds 3 --batch 16 50 [--planner] [--malloc huge|reuse|0]

`--malloc` takes the values of `PLANET_JAX_MALLOC` (`planet_jax.ops.hostmem`): `huge` (the
entry points' default), `reuse`, or `0` for glibc's defaults. Both sides get that setting's
`GLIBC_TUNABLES`; planet_jax's own re-exec is switched off so the setting is the one given.
Threads: both sides use every core the process may run on (`taskset` the whole command to
pin them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from planet_jax.ops import hostmem

HERE = Path(__file__).resolve().parent


def run_side(cmd: list[str], env: dict[str, str], path: Path) -> list[dict]:
    start = time.time()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    records = json.loads(path.read_text())
    for rec in records:
        rec["process_wall_s"] = time.time() - start
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--torch-python", required=True, help="the interpreter with PyTorch")
    parser.add_argument("--models", required=True, help="a Kaixhin/PlaNet checkout (its models.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case and side")
    parser.add_argument("--planner", action="store_true", help="also `bench planner` each round")
    parser.add_argument("--malloc", choices=list(hostmem.SETTINGS), default="huge")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env[hostmem.OPT_OUT] = "0"  # the setting below, not the entry point's own
    if tunables := hostmem.tunables_string(args.malloc):
        env["GLIBC_TUNABLES"] = tunables
    batch = [str(b) for b in args.batch]
    ours_cmd = lambda path: [sys.executable, "-m", "planet_jax.bench", "update", "--preset", "paper",  # noqa: E731
                             "--batch", *batch, "--repeats", str(args.repeats), "--json", str(path)]  # fmt: skip
    theirs_cmd = lambda path: [args.torch_python, str(HERE / "torch_update.py"), "--models", args.models,  # noqa: E731
                               "--batch", *batch, "--repeats", str(args.repeats), "--json", str(path)]  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    rounds = []
    for k in range(args.rounds):
        sides = {}
        order = ["planet_jax", "pytorch"] if k % 2 == 0 else ["pytorch", "planet_jax"]
        for side in order:
            path = out / f"round-{k}-{side}.tmp.json"
            cmd = ours_cmd(path) if side == "planet_jax" else theirs_cmd(path)
            sides[side] = run_side(cmd, env, path)
            path.unlink()
        if args.planner:
            path = out / f"round-{k}-planner.tmp.json"
            planner = [sys.executable, "-m", "planet_jax.bench", "planner", "--preset", "paper",
                       "--repeats", str(args.repeats), "--json", str(path)]  # fmt: skip
            sides["planet_jax_planner"] = run_side(planner, env, path)
            path.unlink()
        ratio = {
            f"B={b}": statistics.median(t["times_s"]) / statistics.median(o["times_s"])
            for b, o, t in zip(args.batch, sides["planet_jax"], sides["pytorch"])
        }
        record = {
            "round": k,
            "order": order,
            "time": time.time(),
            "commit": commit,
            "malloc": args.malloc,
            "GLIBC_TUNABLES": env.get("GLIBC_TUNABLES", ""),
            "pytorch_over_planet_jax": ratio,
            **sides,
        }
        (out / f"round-{k}.json").write_text(json.dumps(record, indent=1))
        rounds.append(record)
        print(
            f"round {k} ({' then '.join(order)}): "
            + "  ".join(
                f"B={b} ours {o['median_s']:.2f} s, PyTorch {t['median_s']:.2f} s, ratio {ratio[f'B={b}']:.2f}"
                for b, o, t in zip(args.batch, sides["planet_jax"], sides["pytorch"])
            )
            + (
                f"  planner {sides['planet_jax_planner'][0]['median_s'] * 1e3:.0f} ms"
                f" ({sides['planet_jax_planner'][0].get('of_matmul_paired', float('nan')):.2f} of matmul)"
                if args.planner
                else ""
            ),
            flush=True,
        )
    summary = {
        "command": " ".join(sys.argv),
        "commit": commit,
        "device": rounds[0]["planet_jax"][0]["device"],
        "malloc": args.malloc,
        "rounds": [
            {
                "order": r["order"],
                **{
                    f"B={b}": {"planet_jax_s": o["median_s"], "pytorch_s": t["median_s"]}
                    for b, o, t in zip(args.batch, r["planet_jax"], r["pytorch"])
                },
                **({"planner_ms": r["planet_jax_planner"][0]["median_s"] * 1e3} if args.planner else {}),
            }
            for r in rounds
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
