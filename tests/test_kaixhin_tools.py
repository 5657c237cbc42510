"""experiments/kaixhin: compare.py's table over pooled runs and stop_after.py's stop rule,
on run directories the test writes itself (no PyTorch, no Kaixhin/PlaNet needed)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "experiments", "kaixhin")


def _planet_run(path, seeds, returns, seconds):
    """A planet_jax run directory whose test phase at episode 10 holds `returns` per seed."""
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"env": {"task": "cartpole-swingup"}}, f)
    records = [{"kind": "train_episode", "episode": 1, "seed": seeds[0], "return": 0.0, "time": 1000.0}]
    records += [
        {"kind": "test", "episode": 10, "seed": s, "return": r, "time": 1000.0 + seconds}
        for s, r in zip(seeds, returns, strict=True)
    ]
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def test_compare_pools_the_seeds_of_several_runs_of_a_task(tmp_path):
    _planet_run(tmp_path / "a", [0, 1], [300.0, 400.0], 600.0)
    _planet_run(tmp_path / "b", [2, 3, 4], [350.0, 500.0, 450.0], 900.0)
    theirs = tmp_path / "kx.json"
    theirs.write_text(
        json.dumps(
            {"task": "cartpole-swingup", "test_episodes": [10], "test_returns": [[410.0, 430.0]], "test_seconds": [300]}
        )
    )
    out = tmp_path / "table.json"
    cmd = [sys.executable, os.path.join(TOOLS, "compare.py"), "--kaixhin", str(theirs), "--json", str(out)]
    single = subprocess.run([*cmd, "--planet", str(tmp_path / "a")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    (row,) = json.loads(out.read_text())
    assert row["planet_jax"]["minutes"] == 10.0 and row["planet_jax"]["minutes_per_seed"] == 5.0

    pooled = subprocess.run(
        [*cmd, "--planet", str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True, text=True
    )
    assert pooled.returncode == 0, pooled.stderr
    (row,) = json.loads(out.read_text())
    ours = np.array([300.0, 400.0, 350.0, 500.0, 450.0])
    assert sorted(row["planet_jax"]["returns"]) == sorted(ours.tolist())
    np.testing.assert_allclose(row["planet_jax"]["mean"], ours.mean())
    np.testing.assert_allclose(row["planet_jax"]["se"], ours.std(ddof=1) / np.sqrt(5))
    assert row["planet_jax"]["minutes"] == [10.0, 15.0] and row["planet_jax"]["minutes_per_seed"] == [5.0, 5.0]
    assert row["kaixhin"]["mean"] == 420.0 and row["kaixhin"]["minutes"] == 5.0
    assert (
        "| cartpole-swingup | 10 | 400.0 +- 35.4 (5) | 10.0 (5.0) / 15.0 (5.0) | 420.0 +- 0.0 (1) | 5.0 |"
        in pooled.stdout
    )


def _kaixhin_run(path, plot_times, metrics_mtime):
    os.makedirs(path / "results" / "run")
    with open(path / "plots.jsonl", "w") as f:
        for t in plot_times:
            f.write(json.dumps({"filename": "results/run/test_rewards.html", "time": t}) + "\n")
            f.write(json.dumps({"filename": "results/run/test_rewards_steps.html", "time": t}) + "\n")
    metrics = path / "results" / "run" / "metrics.pth"
    metrics.write_bytes(b"")
    os.utime(metrics, (metrics_mtime, metrics_mtime))


def _stop_after(run_dir, phases, victim):
    return subprocess.run(
        [
            sys.executable,
            os.path.join(TOOLS, "stop_after.py"),
            str(run_dir),
            str(phases),
            str(victim.pid),
            "--every",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stop_after_terminates_once_the_nth_phase_is_saved(tmp_path):
    _kaixhin_run(tmp_path / "run", [100.0, 200.0, 300.0], metrics_mtime=301.0)
    victim = subprocess.Popen(["sleep", "600"])
    out = _stop_after(tmp_path / "run", 3, victim)
    assert out.returncode == 0, out.stderr
    assert victim.wait(timeout=30) == -signal.SIGTERM
    assert "after test phase 3" in out.stdout


def test_stop_after_leaves_a_run_short_of_its_phase_or_not_yet_saved(tmp_path):
    # Fewer phases than asked, and the N-th phase plotted but its metrics not saved yet: the
    # process ends on its own (status 0), and stop_after.py returns when it has gone.
    _kaixhin_run(tmp_path / "short", [100.0, 200.0], metrics_mtime=201.0)
    _kaixhin_run(tmp_path / "unsaved", [100.0, 200.0, 300.0], metrics_mtime=250.0)
    for run in ("short", "unsaved"):
        victim = subprocess.Popen(["sleep", "1"])
        out = _stop_after(tmp_path / run, 3, victim)
        assert out.returncode == 0, out.stderr
        assert victim.wait(timeout=30) == 0, run
        assert out.stdout == ""
