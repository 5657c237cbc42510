"""Summarise training runs: test return per phase and seed, beside a random policy on the same test episodes.

  python experiments/summarize.py RUN_DIR [RUN_DIR ...] [--json OUT] [--no-random]

For each run directory (a `planet_jax.train` logdir) this prints a markdown table of the
test return at every test phase: per seed, then the mean and standard error over seeds,
the minutes of wall clock since the run's first record (records carry a `time` stamp;
older runs without one show `-`), and, unless `--no-random`, the mean return of uniformly
random actions on exactly the same test episodes (the same environment seeds, so the same
initial states). `--json` writes the same figures for a results directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np


def load(logdir: str) -> tuple[dict, list[dict], dict]:
    """(config, metrics records, summary) of a run directory."""
    with open(os.path.join(logdir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(logdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    summary = {}
    if os.path.exists(os.path.join(logdir, "summary.json")):
        with open(os.path.join(logdir, "summary.json")) as f:
            summary = json.load(f)
    return cfg, records, summary


def random_returns(cfg: dict, seeds: list[int], phases: int, per_phase: int) -> dict[int, float]:
    """Mean return of uniform random actions over the test episodes of every seed and phase: {seed: mean}.

    cfg: the run's config.json; the environment is the run's (task, action repeat, episode
    steps), with state observations where the task has them (the same episodes, faster).
    """
    from planet_jax import config as C
    from planet_jax.io.envs import env_seed, make_env

    config = C.from_dict(cfg)
    if config.task_spec.state_size:
        config = C.replace(config, obs="state")
    env = make_env(config, 0)
    rng = np.random.default_rng(0)
    out = {}
    for seed in seeds:
        totals = []
        for phase in range(phases):
            for j in range(per_phase):
                env.reset(env_seed(seed, "test", phase * per_phase + j))
                total, done = 0.0, False
                for _ in range(env.episode_length):
                    _, reward, done = env.step(rng.uniform(-1, 1, env.action_size))
                    total += reward
                    if done:
                        break
                totals.append(total)
        out[seed] = float(np.mean(totals))
    return out


def summarize(logdir: str, with_random: bool = True) -> dict:
    cfg, records, summary = load(logdir)
    tests = [r for r in records if r["kind"] == "test"]
    by_episode: dict[int, dict[int, float]] = defaultdict(dict)
    times: dict[int, float] = {}
    for r in tests:
        by_episode[r["episode"]][r.get("seed", cfg["train"]["seed"])] = r["return"]
        if "time" in r:
            times[r["episode"]] = r["time"]
    start = min((r["time"] for r in records if "time" in r), default=None)
    seeds = sorted({s for phase in by_episode.values() for s in phase})
    phases = []
    for episode in sorted(by_episode):
        values = [by_episode[episode][s] for s in seeds if s in by_episode[episode]]
        stderr = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        minutes = (times[episode] - start) / 60 if start is not None and episode in times else None
        phases.append(
            {
                "episode": episode,
                "returns": values,
                "mean": float(np.mean(values)),
                "stderr": stderr,
                "minutes": minutes,
            }
        )
    out = {
        "logdir": logdir,
        "task": cfg["env"]["task"],
        "obs": cfg["env"]["obs"],
        "seeds": seeds,
        "phases": phases,
        "seconds_this_session": summary.get("seconds_this_session"),
    }
    if with_random:
        per_phase = cfg["train"]["test_episodes"]
        rand = random_returns(cfg, seeds, len(phases), per_phase)
        out["random"] = {"per_seed": rand, "mean": float(np.mean(list(rand.values())))}
    return out


def markdown(result: dict) -> str:
    seeds = result["seeds"]
    head = ["episode", *(f"seed {s}" for s in seeds), "mean +- s.e.", "minutes"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for p in result["phases"]:
        minutes = f"{p['minutes']:.1f}" if p["minutes"] is not None else "-"
        cells = [
            str(p["episode"]),
            *(f"{v:.1f}" for v in p["returns"]),
            f"{p['mean']:.1f} +- {p['stderr']:.1f}",
            minutes,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if "random" in result:
        lines.append(
            f"\nRandom policy on the same test episodes: {result['random']['mean']:.1f} "
            f"(per seed: {', '.join(f'{v:.1f}' for v in result['random']['per_seed'].values())})."
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--json", default=None, help="write every run's figures to this file")
    parser.add_argument("--no-random", action="store_true", help="skip the random-policy baseline")
    args = parser.parse_args(argv)
    results = []
    for logdir in args.logdirs:
        result = summarize(logdir, with_random=not args.no_random)
        results.append(result)
        print(f"## {logdir} ({result['task']}, {result['obs']})\n\n{markdown(result)}\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results if len(results) > 1 else results[0], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
