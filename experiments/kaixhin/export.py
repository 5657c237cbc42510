"""Kaixhin/PlaNet's metrics.pth (and our stand-in plotly's plots.jsonl) -> one JSON per run.

    KX/.venv/bin/python experiments/kaixhin/export.py RUN_DIR OUT.json --task TASK --seed S

Runs with Kaixhin's virtual environment (it needs torch to read metrics.pth). Writes the
test returns per test phase (its 5 test episodes each), the training returns, and the
wall clock: seconds from `start` to each test phase (the time of the first plot call
after it) and to the last phase.
"""

import argparse
import json
import os

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--task", required=True)
    p.add_argument("--seed", type=int, required=True)
    a = p.parse_args()
    m = torch.load(os.path.join(a.run_dir, "results", "run", "metrics.pth"), weights_only=False)
    start = float(open(os.path.join(a.run_dir, "start")).read())
    plots = [json.loads(line) for line in open(os.path.join(a.run_dir, "plots.jsonl"))]
    # Each test phase ends in a plot of the test rewards, `test_rewards.html`, in order.
    test_times = [r["time"] - start for r in plots if r["filename"].endswith("/test_rewards.html")]
    out = {
        "implementation": "Kaixhin/PlaNet",
        "task": a.task,
        "seed": a.seed,
        "test_episodes": [int(e) for e in m["test_episodes"]],
        "test_returns": [[float(x) for x in r] for r in m["test_rewards"]],
        "test_seconds": test_times[: len(m["test_episodes"])],
        "train_returns": [float(x) for x in m["train_rewards"]],
    }
    with open(a.out + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
