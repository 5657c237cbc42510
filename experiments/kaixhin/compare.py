"""planet_jax beside Kaixhin/PlaNet at the same budget: test return per phase, mean +- s.e.

    python experiments/kaixhin/compare.py --planet RUN_DIR [...] --kaixhin RUN.json [...] [--json OUT]

RUN_DIR: planet_jax run directories (all seeds of a task in one program); RUN.json: one per
Kaixhin seed, written by `export.py`. For every task and every test phase that both sides
reached, each seed's score is the mean of its test episodes (5 on both sides), and the
table gives the mean and standard error over seeds, and the wall-clock minutes to that
phase: planet_jax's for all its seeds in one program (from its first record, the end of
the first random episode, to the phase's test record) and divided by the seeds, Kaixhin's
per seed (from its start to the phase), as run here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from summarize import load  # noqa: E402  (experiments/summarize.py)


def mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def planet_side(logdir: str) -> tuple[str, dict]:
    cfg, records, _ = load(logdir)
    start = records[0]["time"]
    phases: dict[int, dict] = defaultdict(lambda: {"returns": {}, "seconds": 0.0})
    for r in records:
        if r["kind"] == "test":
            phase = phases[r["episode"]]
            phase["returns"][r["seed"]] = r["return"]
            phase["seconds"] = max(phase["seconds"], r["time"] - start)
    phases = {e: {"returns": list(p["returns"].values()), "seconds": p["seconds"]} for e, p in phases.items()}
    return cfg["env"]["task"], phases


def kaixhin_side(paths: list[str]) -> dict[str, dict]:
    tasks: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: {"returns": [], "seconds": []}))
    for path in paths:
        run = json.load(open(path))
        for e, returns, seconds in zip(run["test_episodes"], run["test_returns"], run["test_seconds"], strict=False):
            tasks[run["task"]][e]["returns"].append(float(np.mean(returns)))
            tasks[run["task"]][e]["seconds"].append(seconds)
    return tasks


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--planet", nargs="+", default=[])
    p.add_argument("--kaixhin", nargs="+", default=[])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    ours = dict(planet_side(d) for d in a.planet)
    theirs = kaixhin_side(a.kaixhin)
    rows = []
    print(
        "| task | episodes | planet_jax (seeds) | minutes: all seeds (per seed) | Kaixhin/PlaNet (seeds) | minutes per seed |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for task in sorted(set(ours) | set(theirs)):
        for e in sorted(set(ours.get(task, {})) | set(theirs.get(task, {}))):
            o, t = ours.get(task, {}).get(e), theirs.get(task, {}).get(e)
            row = {"task": task, "episodes": e}
            cells = []
            for side, data in (("planet_jax", o), ("kaixhin", t)):
                if data is None or not data["returns"]:
                    cells += ["-", "-"]
                    continue
                m, se = mean_se(data["returns"])
                secs = data["seconds"] if side == "planet_jax" else float(np.mean(data["seconds"]))
                row[side] = {"mean": m, "se": se, "returns": data["returns"], "minutes": secs / 60}
                minutes = f"{secs / 60:.1f}"
                if side == "planet_jax":
                    row[side]["minutes_per_seed"] = secs / 60 / len(data["returns"])
                    minutes += f" ({secs / 60 / len(data['returns']):.1f})"
                cells += [f"{m:.1f} +- {se:.1f} ({len(data['returns'])})", minutes]
            rows.append(row)
            print(f"| {task} | {e} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
