"""Reproduce the paper's table: run the protocol, then gather results beside the published scores.

  python experiments/paper.py run   --task cheetah-run [--root runs/paper] [-- extra train flags]
  python experiments/paper.py run   --task all
  python experiments/paper.py table --root runs/paper [--out experiments/results/table.md]

`run` trains every seed of a task in one sweep with the settings of
`experiments/configs/TASK.json` (the paper preset, 1000 episodes, 5 seeds, 10 noise-free
test episodes); re-running it resumes. `table` reads every finished or running run
directory under --root and writes a markdown table of test returns (mean and standard
error over seeds) at 100, 500 and 1000 episodes beside the published PlaNet numbers, and
a figure of all learning curves with the published values marked.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MILESTONES = (100, 500, 1000)


def load_config(task: str) -> dict:
    with open(os.path.join(HERE, "configs", f"{task}.json")) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def run(args, extra: list[str]) -> int:
    from planet_jax.io.tasks import PAPER_TASKS as TASKS

    tasks = list(TASKS) if args.task == "all" else [args.task]
    for task in tasks:
        settings = load_config(task)
        logdir = os.path.join(args.root, task)
        cmd = [sys.executable, "-m", "planet_jax.train", *flags(settings), "--logdir", logdir, *extra]
        print("$", " ".join(cmd), flush=True)
        code = subprocess.call(cmd)
        if code:
            return code
    return 0


def read_run(logdir: str) -> dict | None:
    """Test returns of a run directory: {'task', 'obs', 'seeds': {seed: [(episode, env_steps, return)]}}."""
    from planet_jax.io.logger import MetricsLog

    path = os.path.join(logdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        env = json.load(f)["env"]
    seeds: dict[int, list] = {}
    for r in MetricsLog.read(logdir):
        if r.get("kind") == "test":
            seeds.setdefault(r["seed"], []).append((r["episode"], r["env_steps"], r["return"]))
    return {"task": env["task"], "obs": env["obs"], "logdir": logdir, "seeds": seeds}


def at_episode(points: list, episode: int) -> float | None:
    """The test return of the last test phase at or before `episode` (None before any)."""
    before = [p for p in points if p[0] <= episode]
    return before[-1][2] if before else None


def summarise(runs: list[dict], milestones=MILESTONES) -> list[dict]:
    """One row per task: mean and standard error over seeds at each milestone."""
    rows = []
    for run_ in runs:
        row = {"task": run_["task"], "obs": run_["obs"], "logdir": run_["logdir"], "seeds": len(run_["seeds"])}
        last = max((p[0] for pts in run_["seeds"].values() for p in pts), default=0)
        row["episodes"] = last
        for m in milestones:
            values = [at_episode(pts, m) for pts in run_["seeds"].values()] if last >= m else []
            values = [v for v in values if v is not None]
            if values:
                mean = float(np.mean(values))
                se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
                row[m] = (mean, se)
        rows.append(row)
    return rows


def markdown(rows: list[dict], milestones=MILESTONES) -> str:
    from planet_jax.io.tasks import PAPER_SCORES_100, PAPER_SCORES_1000

    def cell(value):
        return "-" if value is None else f"{value[0]:.0f} +- {value[1]:.0f}"

    def paper(table, task):
        return f"{table[task]:.0f}" if task in table else "-"

    head = [
        "task",
        "obs",
        "seeds",
        "episodes run",
        *[f"{m} episodes" for m in milestones],
        "PlaNet ~100",
        "PlaNet 1000",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["task"], r["obs"], str(r["seeds"]), str(r["episodes"]), *[cell(r.get(m)) for m in milestones]]
        cells += [paper(PAPER_SCORES_100, r["task"]), paper(PAPER_SCORES_1000, r["task"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from planet_jax.io.tasks import PAPER_SCORES_100, PAPER_SCORES_1000

    cols = min(max(len(runs), 1), 4)
    rows = -(-max(len(runs), 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax, run_ in zip(axes.flat, runs, strict=False):
        by_episode: dict[int, list[float]] = {}
        for pts in run_["seeds"].values():
            for episode, _, value in pts:
                by_episode.setdefault(episode, []).append(value)
        xs = sorted(by_episode)
        mean = np.array([np.mean(by_episode[x]) for x in xs])
        se = np.array(
            [np.std(by_episode[x], ddof=1) / math.sqrt(len(by_episode[x])) if len(by_episode[x]) > 1 else 0 for x in xs]
        )
        ax.plot(xs, mean, lw=2, label=f"planet_jax ({len(run_['seeds'])} seeds)")
        ax.fill_between(xs, mean - se, mean + se, alpha=0.25)
        task = run_["task"]
        # Published scores as lines, so that short runs keep a readable x axis.
        if task in PAPER_SCORES_1000:
            ax.axhline(PAPER_SCORES_1000[task], color="k", ls="--", lw=1, label="PlaNet, 1000 episodes")
        if task in PAPER_SCORES_100:
            ax.axhline(PAPER_SCORES_100[task], color="k", ls=":", lw=1, label="PlaNet, ~100 episodes")
        ax.set_title(f"{task} ({run_['obs']})")
        ax.set_xlabel("episodes")
        ax.set_ylabel("test return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(args) -> int:
    runs = []
    for name in sorted(os.listdir(args.root)):
        run_ = read_run(os.path.join(args.root, name))
        if run_ and run_["seeds"]:
            runs.append(run_)
    if not runs:
        print(f"error: no run directory with test results under {args.root}", file=sys.stderr)
        return 2
    milestones = tuple(int(m) for m in args.milestones.split(","))
    text = markdown(summarise(runs, milestones), milestones)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        plot(runs, os.path.splitext(args.out)[0] + ".png")
        print(f"wrote {args.out} and {os.path.splitext(args.out)[0]}.png")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train one or all tasks with the paper's protocol")
    p_run.add_argument("--task", required=True, help="a task name or 'all'")
    p_run.add_argument("--root", default="runs/paper")
    p_table = sub.add_parser("table", help="gather run directories into a results table")
    p_table.add_argument("--root", default="runs/paper")
    p_table.add_argument("--out", default=None, help="write the markdown table here (and a .png of the curves)")
    p_table.add_argument("--milestones", default="100,500,1000", help="episode counts to report (comma-separated)")
    args = parser.parse_args(argv)
    return run(args, extra) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
