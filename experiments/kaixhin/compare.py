"""planet_jax beside Kaixhin/PlaNet at the same budget: test return per phase, mean +- s.e.

    python experiments/kaixhin/compare.py --planet RUN_DIR [...] --kaixhin RUN.json [...] [--json OUT]

RUN_DIR: planet_jax run directories (all seeds of a task in one program); RUN.json: one per
Kaixhin seed, written by `export.py`. For every task and every test phase that both sides
reached, each seed's score is the mean of its test episodes (5 on both sides), and the
table gives the mean and standard error over seeds, and the wall-clock minutes to that
phase: planet_jax's for all its seeds in one program (from its first record, the end of
the first random episode, to the phase's test record) and divided by the seeds, Kaixhin's
per seed (from its start to the phase), as run here. Several planet_jax runs of one task
(more seeds, run later) are pooled: their seeds' scores together, and each run's minutes
in turn, separated by " / ".
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
    ours: dict[str, list[dict]] = defaultdict(list)
    for d in a.planet:
        task, phases = planet_side(d)
        ours[task].append(phases)
    theirs = kaixhin_side(a.kaixhin)
    rows = []
    print(
        "| task | episodes | planet_jax (seeds) | minutes: all seeds (per seed) | Kaixhin/PlaNet (seeds) | minutes per seed |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for task in sorted(set(ours) | set(theirs)):
        episodes = {e for phases in ours.get(task, []) for e in phases} | set(theirs.get(task, {}))
        for e in sorted(episodes):
            runs = [phases[e] for phases in ours.get(task, []) if e in phases]
            t = theirs.get(task, {}).get(e)
            row = {"task": task, "episodes": e}
            cells = []
            if runs:
                returns = [x for run in runs for x in run["returns"]]
                m, se = mean_se(returns)
                minutes = [run["seconds"] / 60 for run in runs]
                per_seed = [run["seconds"] / 60 / len(run["returns"]) for run in runs]
                row["planet_jax"] = {"mean": m, "se": se, "returns": returns}
                if len(runs) == 1:
                    row["planet_jax"].update(minutes=minutes[0], minutes_per_seed=per_seed[0])
                else:
                    row["planet_jax"].update(minutes=minutes, minutes_per_seed=per_seed)
                cells += [
                    f"{m:.1f} +- {se:.1f} ({len(returns)})",
                    " / ".join(f"{mi:.1f} ({ps:.1f})" for mi, ps in zip(minutes, per_seed, strict=True)),
                ]
            else:
                cells += ["-", "-"]
            if t is not None and t["returns"]:
                m, se = mean_se(t["returns"])
                secs = float(np.mean(t["seconds"]))
                row["kaixhin"] = {"mean": m, "se": se, "returns": t["returns"], "minutes": secs / 60}
                cells += [f"{m:.1f} +- {se:.1f} ({len(t['returns'])})", f"{secs / 60:.1f}"]
            else:
                cells += ["-", "-"]
            rows.append(row)
            print(f"| {task} | {e} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
