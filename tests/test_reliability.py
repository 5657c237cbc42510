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

    def sample(self, rng, batch, length):
        out = original(self, rng, batch, length)
        count["n"] += 1
        if count["n"] > good_samples:
            out = dict(out, obs=np.full_like(out["obs"], np.nan))
        return out

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
