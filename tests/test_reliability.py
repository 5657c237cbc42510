"""Faults and bad input: clear errors, nothing lost."""

import errno
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import tiny_run
from planet_jax.io.logger import MetricsLog
from planet_jax.io.replay import Replay
from planet_jax.train import NonFiniteError, Trainer, parse_args
from planet_jax.train import main as train_main

BASE = tiny_run(test_every=100, checkpoint_every=2)


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


@pytest.mark.slow
def test_nan_updates_can_be_skipped_and_counted(tmp_path, monkeypatch):
    """Episode 4's cycle sees only NaN batches: all 10 steps are skipped, so the model and the
    optimizer end exactly where a clean run stops after episode 3's cycle, and the cycle
    reports no loss (NaN) rather than 0."""
    clean = _trainer(tmp_path / "clean", "--episodes", "3", "--skip-nonfinite")
    clean.run()
    _poison_after(monkeypatch, good_samples=10)
    trainer = _trainer(tmp_path / "skip", "--episodes", "4", "--skip-nonfinite")
    trainer.run()
    updates = [r for r in MetricsLog.read(str(tmp_path / "skip")) if r["kind"] == "update"]
    assert [r["skipped_updates"] for r in updates] == [0, 10]
    assert np.isfinite(updates[0]["loss"]) and np.isnan(updates[1]["loss"]) and np.isnan(updates[1]["grad_norm"])
    for name in ("params", "opt_state"):
        got, want = getattr(trainer.state, name), getattr(clean.state, name)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert int(trainer.state.step[0]) == 20  # the step counter counts attempts, skipped ones too


def _damage(state_dir, how):
    """Damage a checkpoint's `state` directory: truncate every file, garble the middle third
    of every data file, or delete the largest data file."""
    files = [os.path.join(root, name) for root, _, names in os.walk(state_dir) for name in names]
    data_files = [f for f in files if os.sep + "d" + os.sep in f]
    assert data_files, "orbax's layout changed: no data files under state/**/d/"
    if how == "delete":
        os.remove(max(data_files, key=os.path.getsize))
        return
    for path in files if how == "truncate" else data_files:
        data = bytearray(open(path, "rb").read())
        if how == "truncate":
            data = data[: len(data) // 3]
        else:
            third = slice(len(data) // 3, max(2 * len(data) // 3, len(data) // 3 + 1))
            data[third] = bytes(b ^ 0x5A for b in data[third])
        open(path, "wb").write(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncate", "garble", "delete"])
def test_damaged_newest_checkpoint_falls_back_to_an_intact_one(reference_run, tmp_path, how):
    """The run resumes from checkpoint 4 and ends exactly as the uninterrupted run."""
    logdir = tmp_path / "ckpt"
    assert train_main([*BASE, "--episodes", "6", "--logdir", str(logdir)]) == 0
    _damage(logdir / "checkpoints" / "6" / "state", how)
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert "step 6 is damaged" in out.stderr
    assert "resumed" in out.stdout and "at episode 4" in out.stdout
    assert _deterministic(MetricsLog.read(str(logdir))) == _deterministic(reference_run)
    if how != "truncate":
        return

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


def test_an_unusable_logdir_is_one_sentence_and_exit_2(tmp_path):
    """Under a regular file: refused by the command before anything is built or compiled."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for logdir, reason in (
        (blocker / "run", "a part of the path is a regular file"),
        (blocker, "it is a regular file"),
    ):
        out = _cli(logdir, timeout=120)
        assert out.returncode == 2, out.stderr
        assert out.stderr == f"error: --logdir {logdir} cannot be used as a run directory: {reason}, not a directory.\n"
        assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    "errno_, reason", [(errno.EROFS, "the filesystem is read-only"), (errno.EACCES, "permission denied")]
)
def test_a_read_only_or_forbidden_logdir_is_refused_before_the_trainer(tmp_path, monkeypatch, capsys, errno_, reason):
    """A read-only mount and a missing permission cannot be made as root (the CI's user), so
    the filesystem's answer is injected where the run directory is first written."""
    import planet_jax.train as train

    def refuse(path, *args, **kwargs):
        raise OSError(errno_, os.strerror(errno_), path)

    monkeypatch.setattr(train.os, "makedirs", refuse)
    monkeypatch.setattr(train, "Trainer", lambda *a, **k: pytest.fail("the trainer was built"))
    with pytest.raises(SystemExit) as exit_:
        train_main([*BASE, "--logdir", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err == f"error: --logdir {tmp_path / 'run'} cannot be used as a run directory: {reason}.\n"
    )


def test_a_read_only_mount_is_refused(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)]).returncode
    ):
        pytest.skip("needs root to mount a read-only tmpfs")
    try:
        out = _cli(mount / "run", timeout=120)
    finally:
        subprocess.run(["umount", str(mount)])
    assert out.returncode == 2, out.stderr
    assert (
        out.stderr
        == f"error: --logdir {mount / 'run'} cannot be used as a run directory: the filesystem is read-only.\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_a_directory_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        out = _cli(locked / "run", timeout=120)
    finally:
        locked.chmod(0o700)
    assert out.returncode == 2 and "cannot be used as a run directory: permission denied." in out.stderr


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


@pytest.mark.slow
def test_same_seed_same_results_run_after_run(reference_run, tmp_path):
    out = _cli(tmp_path / "again", "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert _deterministic(MetricsLog.read(str(tmp_path / "again"))) == _deterministic(reference_run)
    other = _cli(tmp_path / "other-seed", "--episodes", "8", "--seed", "1")
    assert _deterministic(MetricsLog.read(str(tmp_path / "other-seed"))) != _deterministic(reference_run)
    assert other.returncode == 0


# Kill points chosen from the run's progress (tests/killpoint.py), with the checkpoint each
# relaunch must resume from. 8 episodes, checkpoints at 2, 4, 6, 8, one update call per
# trained episode, metrics.jsonl: 2 lines per trained episode after 2 seed episodes' 1 each.
KILLS = [
    ("update", 2, None),  # mid-computation of episode 4's update, after checkpoint 2
    ("checkpoint", 4, 2),  # checkpoint 4 complete in orbax's temporary directory, uncommitted
    ("metrics", 11, 2),  # right after episode 7's first line: checkpoint 6 is on disk
    ("update", 1, 6),  # mid-computation of the first update after resuming
]


@pytest.mark.slow
def test_sigkill_at_progress_points_then_resume_matches(reference_run, tmp_path):
    logdir = tmp_path / "killed"
    killpoint = os.path.join(os.path.dirname(__file__), "killpoint.py")
    for point, n, resumed_from in KILLS:
        out = subprocess.run(
            [sys.executable, killpoint, point, str(n), *BASE, "--episodes", "8", "--logdir", str(logdir)],
            capture_output=True,
            text=True,
            timeout=600,  # a hang, not a speed bound: each launch takes seconds
        )
        assert out.returncode == -9, f"{point} {n} was not reached: {out.returncode}\n{out.stderr}"
        if resumed_from is not None:
            assert f"from the checkpoint at episode {resumed_from}" in out.stdout, (point, n, out.stdout)
        if point == "checkpoint":
            left = [name for name in os.listdir(logdir / "checkpoints") if "orbax-checkpoint-tmp" in name]
            assert left, "the kill did not land inside the checkpoint's temporary directory"
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert "from the checkpoint at episode 6" in out.stdout
    assert _deterministic(MetricsLog.read(str(logdir))) == _deterministic(reference_run)
    assert len(os.listdir(logdir / "replay" / "seed-0")) == 8
    assert sorted(int(s) for s in os.listdir(logdir / "checkpoints") if s.isdigit()) == [4, 6, 8]


@pytest.mark.slow
def test_damaged_replay_episode_is_reported_and_the_run_recovers(reference_run, tmp_path):
    logdir = tmp_path / "replay"
    assert _cli(logdir, "--episodes", "6").returncode == 0
    # Episode 4's frames (known to checkpoint 6 only) are garbled: resume from checkpoint 4.
    path = logdir / "replay" / "seed-0" / "episode-000004" / "obs.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 32] = b"\x00" * 32
    path.write_bytes(bytes(data))
    out = _cli(logdir, "--episodes", "8")
    assert out.returncode == 0, out.stderr
    assert "episode-000004 is damaged" in out.stderr
    assert "step 6 is unusable" in out.stderr and "at episode 4" in out.stdout
    assert (logdir / "replay" / "seed-0" / "episode-000004.damaged").is_dir()
    assert _deterministic(MetricsLog.read(str(logdir))) == _deterministic(reference_run)


@pytest.mark.slow
def test_fresh_starts_over_elsewhere(tmp_path):
    logdir = tmp_path / "run"
    assert _cli(logdir, "--episodes", "2").returncode == 0
    refused = _cli(logdir, "--episodes", "2", "--horizon", "3")
    assert refused.returncode == 2 and "horizon: 6 -> 3" in refused.stderr and "new --logdir" in refused.stderr
    out = _cli(logdir, "--episodes", "2", "--horizon", "3", "--fresh")
    assert out.returncode == 0, out.stderr
    assert f"starting a new run in {logdir}-1" in out.stdout
    assert (tmp_path / "run-1" / "config.json").exists()


@pytest.mark.slow
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


def test_a_checkpoint_whose_arrays_differ_from_its_fingerprint_is_damaged(tmp_path, monkeypatch):
    """Orbax restores some garbled files silently to other numbers: the fingerprint saved
    with the arrays is what catches it. Step 4 is saved with a fingerprint off by one."""
    import planet_jax.io.checkpoint as checkpoint

    trainer = _trainer(tmp_path / "run", "--episodes", "2")
    trainer.run()
    state = trainer.state
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpts")
    ckpt.save(2, state, {"n": 2})
    honest = checkpoint.fingerprint
    monkeypatch.setattr(checkpoint, "fingerprint", lambda tree: honest(tree).at[3].add(1))
    ckpt.save(4, state, {"n": 4})
    monkeypatch.setattr(checkpoint, "fingerprint", honest)
    restored, meta, step = ckpt.restore(state)
    assert step == 2 and meta == {"n": 2}
    assert ckpt.steps() == [2] and any(name.startswith("4.damaged") for name in os.listdir(tmp_path / "ckpts"))
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ckpt.close()


def test_the_fingerprint_changes_with_any_single_element():
    from planet_jax.io.checkpoint import fingerprint

    rng = np.random.default_rng(0)
    tree = {
        "f32": rng.normal(size=(7, 5)).astype(np.float32),
        "i32": rng.integers(-9, 9, 11).astype(np.int32),
        "u32": rng.integers(0, 2**32, 6, dtype=np.uint32),
        "bf16": rng.normal(size=9).astype(jax.numpy.bfloat16),
        "bool": rng.random(8) > 0.5,
    }
    base = np.asarray(fingerprint(tree))
    leaves = sorted(tree)  # jax.tree.leaves orders dict keys
    for i, name in enumerate(leaves):
        for index in range(tree[name].size):
            changed = {k: v.copy() for k, v in tree.items()}
            flat = changed[name].reshape(-1)
            flat[index] = ~flat[index] if name == "bool" else flat[index] + 1
            now = np.asarray(fingerprint(changed))
            assert now[i] != base[i], (name, index)
            assert np.array_equal(np.delete(now, i), np.delete(base, i))
    # Two elements swapped: the weights depend on the position.
    swapped = dict(tree, f32=tree["f32"].reshape(-1)[::-1].reshape(7, 5).copy())
    assert np.asarray(fingerprint(swapped))[leaves.index("f32")] != base[leaves.index("f32")]


@pytest.mark.slow
def test_a_replay_that_cannot_fit_on_the_disk_is_refused_at_start(tmp_path, monkeypatch, capsys):
    """The episodes still to collect (8 x (26 entries x 28 bytes + 640 of headers) =
    10.9 kB) against the run directory's free space, reported before the first episode."""
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 5000, 5000))
    with pytest.raises(SystemExit) as exit_:
        train_main([*BASE, "--episodes", "8", "--logdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "the replay needs about 10.9 kB more (1 agents x up to 8 episodes of 1.37 kB)" in err
    assert "has 5 kB free" in err
    assert not os.listdir(tmp_path / "run" / "replay" / "seed-0")
