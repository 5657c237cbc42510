"""Faults and bad input: clear errors, nothing lost."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from planet_jax.logger import MetricsLog
from planet_jax.replay import Replay
from planet_jax.train import NonFiniteError, Trainer, parse_args
from planet_jax.train import main as train_main

BASE = [
    "--preset", "debug", "--task", "cartpole-balance", "--obs", "state", "--seed-episodes", "2",
    "--test-every", "100", "--checkpoint-every", "2", "--train-steps", "10", "--episode-steps", "200",
    "--no-progress",
]  # fmt: skip


def _trainer(logdir, *extra):
    args = parse_args([*BASE, "--logdir", str(logdir), *extra])
    return Trainer(args.config, args.logdir, progress=False)


def _poison_after(monkeypatch, good_samples):
    """Make replay samples NaN after `good_samples` good ones."""
    original = Replay.sample
    count = {"n": 0}

    def sample(self, rng, batch, length, out=None):
        result = original(self, rng, batch, length, out=out)
        count["n"] += 1
        if count["n"] > good_samples:
            result["obs"][...] = np.nan  # in place: `out` may be a view into the update's batch
        return result

    monkeypatch.setattr(Replay, "sample", sample)


def test_nan_stops_the_run_naming_step_and_term_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    # Episodes 1-2 random (checkpoint at 2); cycle 3 has 10 good updates; cycle 4 is poisoned.
    _poison_after(monkeypatch, good_samples=10)
    trainer = _trainer(tmp_path / "nan", "--episodes", "6")
    with pytest.raises(NonFiniteError) as info:
        trainer.run()
    message = str(info.value)
    assert "non-finite image_loss" in message and "update step 11 of seed 0" in message
    assert "the last good checkpoint (episode 2) is kept" in message
    assert trainer.ckpt.steps() == [2]


def test_nan_updates_can_be_skipped_and_counted(tmp_path, monkeypatch):
    _poison_after(monkeypatch, good_samples=10)
    trainer = _trainer(tmp_path / "skip", "--episodes", "4", "--skip-nonfinite")
    before = None
    trainer.run()
    updates = [r for r in MetricsLog.read(str(tmp_path / "skip")) if r["kind"] == "update"]
    assert [r["skipped_updates"] for r in updates] == [0, 10]
    assert all(np.isfinite(r["loss"]) for r in updates[:1])
    del before


def test_damaged_newest_checkpoint_falls_back_to_an_intact_one(tmp_path):
    logdir = tmp_path / "ckpt"
    assert train_main([*BASE, "--episodes", "6", "--logdir", str(logdir)]) == 0
    newest = logdir / "checkpoints" / "6"
    for root, _, files in os.walk(newest / "state"):
        for name in files:
            path = os.path.join(root, name)
            data = open(path, "rb").read()
            open(path, "wb").write(data[: len(data) // 3])  # truncate every file of the state
    out = subprocess.run(
        [sys.executable, "-m", "planet_jax.train", *BASE, "--episodes", "8", "--logdir", str(logdir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "step 6 is damaged" in out.stderr
    assert "resumed" in out.stdout and "at episode 4" in out.stdout

    # With every checkpoint damaged, the run refuses rather than starting over.
    for step in os.listdir(logdir / "checkpoints"):
        if step.isdigit():
            shutil.rmtree(logdir / "checkpoints" / step / "state")
    out = subprocess.run(
        [sys.executable, "-m", "planet_jax.train", *BASE, "--episodes", "8", "--logdir", str(logdir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1
    assert "is damaged" in out.stderr and "refusing to start over" in out.stderr
    assert len(os.listdir(logdir / "replay" / "seed-0")) == 8  # nothing was deleted


def test_evaluate_without_a_checkpoint_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "planet_jax.evaluate", "--logdir", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "is not a run directory (no config.json)" in out.stderr


def _cli(logdir, *extra, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "planet_jax.train", *BASE, "--logdir", str(logdir), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _deterministic(records):
    return [{k: v for k, v in r.items() if k not in ("update_seconds", "plan_ms_per_action", "time")} for r in records]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 8-episode run that the faulted runs must reproduce exactly."""
    logdir = tmp_path_factory.mktemp("reference") / "run"
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    return MetricsLog.read(str(logdir))


def test_same_seed_same_results_run_after_run(reference_run, tmp_path):
    out = _cli(tmp_path / "again", "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert _deterministic(MetricsLog.read(str(tmp_path / "again"))) == _deterministic(reference_run)
    other = _cli(tmp_path / "other-seed", "--episodes", "8", "--seed", "1")
    assert _deterministic(MetricsLog.read(str(tmp_path / "other-seed"))) != _deterministic(reference_run)
    assert other.returncode == 0


def test_sigkill_at_several_moments_then_resume_matches(reference_run, tmp_path):
    import time

    logdir = tmp_path / "killed"
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(4):  # kill at random moments: updates, collection, checkpoint writes
        proc = subprocess.Popen(
            [sys.executable, "-m", "planet_jax.train", *BASE, "--episodes", "8", "--logdir", str(logdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(float(rng.uniform(4.0, 9.0)))  # start-up and compilation take about 4 s
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        kills += 1
    assert kills >= 2
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert _deterministic(MetricsLog.read(str(logdir))) == _deterministic(reference_run)
    assert len(os.listdir(logdir / "replay" / "seed-0")) == 8


def test_damaged_replay_episode_is_reported_and_the_run_recovers(reference_run, tmp_path):
    logdir = tmp_path / "replay"
    assert _cli(logdir, "--episodes", "6").returncode == 0
    # Episode 4 (known to checkpoints 6 and... only 6) is garbled: resume from checkpoint 4.
    path = logdir / "replay" / "seed-0" / "episode-000004.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 32] = b"\x00" * 32
    path.write_bytes(bytes(data))
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert "episode-000004.npz is damaged" in out.stderr
    assert "step 6 is unusable" in out.stderr and "at episode 4" in out.stdout
    assert (logdir / "replay" / "seed-0" / "episode-000004.npz.damaged").exists()
    assert _deterministic(MetricsLog.read(str(logdir))) == _deterministic(reference_run)


def test_fresh_starts_over_elsewhere(tmp_path):
    logdir = tmp_path / "run"
    assert _cli(logdir, "--episodes", "2").returncode == 0
    refused = _cli(logdir, "--episodes", "2", "--horizon", "3")
    assert refused.returncode == 2 and "horizon: 6 -> 3" in refused.stderr and "new --logdir" in refused.stderr
    out = _cli(logdir, "--episodes", "2", "--horizon", "3", "--fresh")
    assert out.returncode == 0, out.stderr
    assert f"starting a new run in {logdir}-1" in out.stdout
    assert (tmp_path / "run-1" / "config.json").exists()


def test_disk_full_is_a_clear_error_and_loses_nothing(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("needs root to mount a 1 MiB tmpfs")
    try:
        logdir = mount / "run"
        out = _cli(logdir, "--episodes", "20")
        assert out.returncode == 1, out.stdout + out.stderr
        last = out.stderr.strip().splitlines()
        assert any("No space left on device" in line for line in last), out.stderr
        assert "stay intact" in out.stderr and "re-run the same command" in out.stderr
        # Everything written before is usable: move the run to a roomy disk and resume it.
        saved = tmp_path / "moved"
        shutil.copytree(logdir, saved)
    finally:
        subprocess.run(["umount", str(mount)])
    steps = sorted(int(s) for s in os.listdir(saved / "checkpoints") if s.isdigit())
    assert steps, "no checkpoint survived"
    out = _cli(saved, "--episodes", str(steps[-1] + 2))
    assert out.returncode == 0, out.stderr
    assert f"at episode {steps[-1]}" in out.stdout
