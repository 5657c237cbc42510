"""End-to-end runs of the training and evaluation programs (tiny configs, CPU)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import TIMING_KEYS, UPDATE_METRICS, tiny_run
from planet_jax.io.logger import MetricsLog
from planet_jax.train import main as train_main

# A state-observation run small enough for the test suite: 6 episodes of cartpole-balance.
TINY = tiny_run(episodes=6, test_every=2, checkpoint_every=2, episode_steps=400)


def _deterministic(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _run_cli(args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "planet_jax.train", *args], capture_output=True, text=True, timeout=600, **kwargs
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("runs") / "full")
    assert train_main([*TINY, "--logdir", logdir]) == 0
    return logdir


@pytest.mark.slow
def test_run_writes_everything(finished_run):
    d = finished_run
    for name in ("config.json", "metrics.jsonl", "curve.png", "summary.json"):
        assert os.path.getsize(os.path.join(d, name)) > 0, name
    assert sorted(os.listdir(os.path.join(d, "replay", "seed-0"))) == [f"episode-{i:06d}" for i in range(6)]
    assert sorted(int(s) for s in os.listdir(os.path.join(d, "checkpoints")) if s.isdigit()) == [2, 4, 6]
    assert any(n.startswith("events") for n in os.listdir(os.path.join(d, "tensorboard")))
    records = MetricsLog.read(d)
    kinds = [r["kind"] for r in records]
    assert kinds.count("train_episode") == 6 and kinds.count("test") == 3 and kinds.count("update") == 4
    update = next(r for r in records if r["kind"] == "update")
    for key in UPDATE_METRICS:
        assert np.isfinite(update[key]), key
    summary = json.load(open(os.path.join(d, "summary.json")))
    assert summary["episodes"] == 6 and summary["env_steps"] == 6 * 400 and not summary["interrupted"]
    # The seed episodes (random actions) are marked, and their mean is the summary's baseline.
    seed_episodes = int(TINY[TINY.index("--seed-episodes") + 1])
    trains = [r for r in records if r["kind"] == "train_episode"]
    assert [r["policy"] for r in trains] == ["random"] * seed_episodes + ["planner"] * (6 - seed_episodes)
    assert summary["random_return_mean"] == pytest.approx(np.mean([r["return"] for r in trains[:seed_episodes]]))
    first = min(r["episode"] for r in records if r["kind"] == "test")
    assert summary["first_test"][0] == first
    # Every backend-dependent setting as it ran (the config itself keeps `auto`).
    from planet_jax import config as C
    from planet_jax.ops import backends

    saved = C.from_dict(json.load(open(os.path.join(d, "config.json"))))
    assert saved.planner.env_axis == "auto" and summary["platform"] == backends.choices(saved)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_rerun_matches_uninterrupted(finished_run, tmp_path):
    """Killed right after episode 5's first metrics line (tests/killpoint.py): checkpoint 4
    is on disk and checkpoint 6 is not, on any machine. metrics.jsonl of TINY: episode 1
    one line, 2 two (a test), 3 two (an update), 4 three: line 9 is episode 5's first."""
    logdir = str(tmp_path / "killed")
    killpoint = os.path.join(os.path.dirname(__file__), "killpoint.py")
    proc = subprocess.run(
        [sys.executable, killpoint, "metrics", "9", *TINY, "--logdir", logdir], capture_output=True, timeout=600
    )
    assert proc.returncode == -9, proc.stderr
    steps = sorted(int(s) for s in os.listdir(os.path.join(logdir, "checkpoints")) if s.isdigit())
    assert steps == [2, 4]
    out = _run_cli([*TINY, "--logdir", logdir])
    assert out.returncode == 0, out.stderr
    assert "from the checkpoint at episode 4" in out.stdout
    assert _deterministic(MetricsLog.read(logdir)) == _deterministic(MetricsLog.read(finished_run))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_usable_checkpoint(tmp_path, signum):
    logdir = str(tmp_path / "term")
    proc = subprocess.Popen(
        [sys.executable, "-m", "planet_jax.train", *TINY, "--episodes", "40", "--logdir", logdir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The signal follows progress (episode 2 on disk); the deadline only turns a hang into a
    # failure, and 40 episodes take minutes, far more than the 50 ms poll.
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(logdir, "replay", "seed-0", "episode-000002")):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert signal.Signals(signum).name in stderr and "interrupted" in stdout
    summary = json.load(open(os.path.join(logdir, "summary.json")))
    assert summary["interrupted"] and summary["episodes"] < 40
    assert summary["checkpoints"][-1] == summary["episodes"]
    if signum == signal.SIGINT:
        return  # the same handler: resuming is checked once, below, for SIGTERM
    # The checkpoint restores, and the run can be extended past its old end.
    out = _run_cli([*TINY, "--episodes", str(summary["episodes"] + 1), "--logdir", logdir])
    assert out.returncode == 0, out.stderr
    assert f"resumed {logdir} from the checkpoint at episode {summary['episodes']}" in out.stdout
    assert json.load(open(os.path.join(logdir, "summary.json")))["episodes"] == summary["episodes"] + 1


@pytest.mark.slow
def test_mismatched_config_is_refused(finished_run):
    out = _run_cli([*TINY, "--logdir", finished_run, "--learning-rate", "3e-4", "--horizon", "4"])
    assert out.returncode == 2
    assert "holds a run with a different config" in out.stderr
    assert "learning_rate: 0.001 -> 0.0003" in out.stderr and "horizon: 6 -> 4" in out.stderr


def _files(directory):
    """Every file and directory under `directory`: relative path -> (bytes or None, mtime)."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            data = open(path, "rb").read() if name in files else None
            out[os.path.relpath(path, directory)] = (data, os.stat(path).st_mtime_ns)
    return out


@pytest.mark.slow
def test_offline_training_from_a_replay_never_writes_it(finished_run, tmp_path, capsys):
    """`--replay-from DIR --no-collect`: C updates per cycle on DIR's episodes, test phases
    with the planner, no environment steps; DIR's replay stays byte for byte (and mtime for
    mtime) as it was, also across a resume, which reads the same episodes again."""
    source = os.path.join(finished_run, "replay")
    before = _files(source)
    logdir = str(tmp_path / "offline")
    offline = [*TINY, "--replay-from", finished_run, "--no-collect", "--test-every", "3", "--logdir", logdir]
    assert train_main([*offline, "--episodes", "3"]) == 0
    assert train_main([*offline, "--episodes", "4"]) == 0  # resumed from its checkpoint at 3
    # With collecting, the planner acts from the first episode (the source is the seed data)
    # and the new episodes go to this run's own replay.
    growing = str(tmp_path / "growing")
    assert train_main([*TINY, "--replay-from", finished_run, "--episodes", "2", "--logdir", growing]) == 0
    assert _files(source) == before
    assert len(os.listdir(os.path.join(growing, "replay", "seed-0"))) == 2
    assert [r["kind"] for r in MetricsLog.read(growing)][:2] == ["train_episode", "update"]
    records = MetricsLog.read(logdir)
    assert [r["kind"] for r in records] == ["update"] * 3 + ["test", "update", "test"]
    assert all(r["env_steps"] == 0 for r in records)
    updates = [r for r in records if r["kind"] == "update"]
    # 40 updates on 6 fixed episodes fit them: the image and reward losses fall.
    assert updates[-1]["image_loss"] < 0.9 * updates[0]["image_loss"]
    assert updates[-1]["reward_loss"] < updates[0]["reward_loss"]
    assert json.load(open(os.path.join(logdir, "replay_from.json")))["episodes"] == {"seed-0": 6}
    assert os.listdir(os.path.join(logdir, "replay", "seed-0")) == []
    assert json.load(open(os.path.join(logdir, "summary.json")))["env_steps"] == 0
    capsys.readouterr()
    two = tmp_path / "two-agents"  # a source with seeds 0 and 1
    for seed in (0, 1):
        shutil.copytree(os.path.join(source, "seed-0"), two / "replay" / f"seed-{seed}")
    # Refusals, one sentence each, before anything runs.
    for i, (argv, says) in enumerate(
        (
            ([*TINY, "--no-collect"], "collect=false needs replay_from"),
            ([*TINY, "--replay-from", finished_run, "--obs", "pixels"], "holds observations (5,)"),
            (
                [*TINY, "--replay-from", str(two), "--num-seeds", "3"],
                "no replay for agent seed-2 (it holds seed-0, seed-1)",
            ),
            ([*TINY, "--replay-from", logdir], "must be another run's directory"),
        )
    ):
        with pytest.raises(SystemExit) as exit_:
            train_main([*argv, "--logdir", logdir if logdir in argv else str(tmp_path / f"refused-{i}")])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and says in err and err.count("\n") == 1, err
        refused = tmp_path / f"refused-{i}"
        assert not refused.exists() or not os.listdir(refused)  # nothing written there


@pytest.mark.slow
def test_evaluate_restores_and_writes_returns_and_videos(tmp_path):
    from planet_jax.evaluate import main as evaluate_main

    logdir = str(tmp_path / "pixels")
    args = ["--preset", "debug", "--task", "cartpole-swingup", "--episodes", "3", "--seed-episodes", "2",
            "--train-steps", "10", "--episode-steps", "200", "--test-every", "3", "--no-progress"]  # fmt: skip
    assert train_main([*args, "--logdir", logdir]) == 0
    assert evaluate_main(["--logdir", logdir, "--episodes", "2", "--openloop-steps", "10"]) == 0
    out = os.path.join(logdir, "eval", "step-3")
    result = json.load(open(os.path.join(out, "returns.json")))
    assert result["step"] == 3 and len(result["returns"]) == 2
    assert np.isclose(result["mean"], np.mean(result["returns"]))
    for video in ("episode-0.mp4", "openloop.mp4"):
        assert os.path.getsize(os.path.join(out, video)) > 1000, video
    import imageio.v3 as iio

    frames = iio.imread(os.path.join(out, "openloop.mp4"))
    # 5 context frames + 10 predictions (not one frame per evaluation episode), truth |
    # prediction | error, upscaled 3x.
    assert frames.shape == (15, 3 * 64, 3 * 3 * 64, 3)
    # A step that does not exist: a clear error listing the steps that do.
    proc = subprocess.run(
        [sys.executable, "-m", "planet_jax.evaluate", "--logdir", logdir, "--step", "7"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no checkpoint at step 7" in proc.stderr and "[2, 3]" in proc.stderr


def test_unknown_preset_task_and_bad_override_exit_2_before_anything(tmp_path, capsys):
    # The first case through `python -m planet_jax.train` itself, the rest through `main`
    # in this process (the same code path, without a JAX start-up each).
    logdir = tmp_path / "never"
    for i, (args, message) in enumerate(
        (
            (["--preset", "huge"], "--preset must be one of paper, small, quick, debug, got 'huge'"),
            (["--task", "pong"], "unknown task 'pong'"),
            (["--num-elites", "2000"], "num_elites must be at most num_candidates (1000)"),
            (["--learning-rate", "fast"], "--learning-rate"),
            (["--deter-size", "-3"], "deter_size must be an integer >= 1"),
        )
    ):
        argv = [*args, "--logdir", str(logdir)]
        if i == 0:
            out = _run_cli(argv)
            code, stderr = out.returncode, out.stderr
        else:
            with pytest.raises(SystemExit) as exit_info:
                train_main(argv)
            code, stderr = exit_info.value.code, capsys.readouterr().err
        assert code == 2, (args, stderr)
        assert message in stderr, (args, stderr)
        assert not logdir.exists()


@pytest.mark.slow
def test_agent_learns_cartpole_balance_from_states(tmp_path):
    """Learning, not only running: the test return at episode 16 reaches 1.25x a random policy's.

    Measured with this configuration over seeds 0 to 4 in one program (bit-identical to
    single runs on CPU), test return at episode 16: on a 2-core AMD EPYC at commit 315384a
    (experiments/results/cpu-state-ab-objective) 463.6, 451.1, 476.3, 424.2, 479.8; on a
    2-core Intel Xeon (AVX-512, AMX) at commit c5d2d0e 466.4, 464.8, 587.9, 396.7, 373.1
    (ten runs: mean 458.4, s.d. 57.7, lowest 373.1). Random actions on the same test
    episodes score 275.3 for seed 0, so the threshold is 1.25 x 275.3 = 344: 29 below the
    lowest of the ten (the Xeon's seed 4, which sent 1.35x, the earlier bar, to within 1),
    69 above random. The bar is modest on purpose: balance is forgiving, and at episode 4,
    before any training, the same seeds' planners already read 249 to 420, so this test
    catches an agent broken down to random, not a small loss of learning speed (the
    A/B runs in experiments/results measure that).
    """
    from planet_jax.io.envs import ControlEnv, env_seed

    logdir = str(tmp_path / "learn")
    args = [
        "--preset", "debug", "--task", "cartpole-balance", "--obs", "state", "--episodes", "16",
        "--seed-episodes", "4", "--train-steps", "100", "--updates-per-call", "50", "--batch-size", "32",
        "--chunk-length", "32", "--deter-size", "64", "--stoch-size", "16", "--hidden-size", "64",
        "--reward-units", "64", "--state-units", "64", "--horizon", "12", "--num-candidates", "200",
        "--num-elites", "20", "--num-iterations", "5", "--test-every", "4", "--test-episodes", "3",
        "--no-progress",
    ]  # fmt: skip
    assert train_main([*args, "--logdir", logdir]) == 0
    tests = [r for r in MetricsLog.read(logdir) if r["kind"] == "test"]
    assert [r["episode"] for r in tests] == [4, 8, 12, 16]

    # The random policy on the same test episodes (same environment seeds).
    env = ControlEnv("cartpole-balance", seed=0, obs="state")
    rng = np.random.default_rng(0)
    random_returns = []
    for phase in range(4):
        for j in range(3):
            env.reset(env_seed(0, "test", phase * 3 + j))
            total = 0.0
            for _ in range(env.episode_length):
                total += env.step(rng.uniform(-1, 1, 1))[1]
            random_returns.append(total)
    random_mean = float(np.mean(random_returns))
    final = tests[-1]["return"]
    print(f"random policy {random_mean:.1f}; agent test returns {[round(r['return'], 1) for r in tests]}")
    assert final >= 1.25 * random_mean, (final, random_mean, [r["return"] for r in tests])


def test_acting_keys_are_folded_in_one_compiled_call():
    import jax

    from planet_jax.agent.acting import fold_in_keys

    keys = jax.random.split(jax.random.key(3), 3)
    fold_in_keys(keys, 0)
    compiled = fold_in_keys._cache_size()  # (other tests may have compiled other shapes)
    for t in (0, 7, 999):
        expected = np.stack([jax.random.key_data(jax.random.fold_in(k, t)) for k in keys])
        np.testing.assert_array_equal(jax.random.key_data(fold_in_keys(keys, t)), expected)
    assert fold_in_keys._cache_size() == compiled  # t is traced: no compilation per step


def _tensorboard_scalars(directory):
    """{tag: {step: value}} read back from the event files (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict = {}
    for name in sorted(os.listdir(directory)):
        data = open(os.path.join(directory, name), "rb").read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


@pytest.mark.slow
def test_tensorboard_and_curve_hold_the_metrics(finished_run):
    """The artifacts are read back, not only found: TensorBoard has every test return and
    update loss of metrics.jsonl at its episode, and curve.png is a drawn 1100x400 image."""
    from PIL import Image

    scalars = _tensorboard_scalars(os.path.join(finished_run, "tensorboard"))
    records = MetricsLog.read(finished_run)
    tests = [r for r in records if r["kind"] == "test"]
    updates = [r for r in records if r["kind"] == "update"]
    assert {r["episode"]: pytest.approx(r["return"], rel=1e-6) for r in tests} == scalars["test/seed0/return"]
    assert {r["episode"]: pytest.approx(r["loss"], rel=1e-6) for r in updates} == scalars["update/seed0/loss"]
    image = np.asarray(Image.open(os.path.join(finished_run, "curve.png")).convert("L"))
    assert image.shape == (400, 1100)
    assert (image < 128).mean() > 0.005  # axes, lines and text, not a blank canvas


@pytest.mark.slow
def test_only_the_newest_checkpoints_are_kept(tmp_path):
    logdir = tmp_path / "keep"
    assert train_main([*TINY, "--keep-checkpoints", "2", "--logdir", str(logdir)]) == 0
    assert sorted(int(s) for s in os.listdir(logdir / "checkpoints") if s.isdigit()) == [4, 6]


@pytest.mark.slow
def test_compiled_programs_are_cached_per_user_unless_turned_off(tmp_path):
    """The default cache directory is used when JAX_COMPILATION_CACHE_DIR is not set (the
    suite sets it for itself, so it is removed here)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    # Every program is cached, however fast it compiled: by default JAX keeps only those that
    # took over 1 s, so what the first process left would depend on the machine's speed.
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    args = [*TINY, "--episodes", "3", "--test-every", "3"]
    for flag, cache in (("--compile-cache", tmp_path / "on"), ("--no-compile-cache", tmp_path / "off")):
        out = _run_cli(
            [*args, flag, "--logdir", str(tmp_path / f"run{flag}")], env=dict(env, PLANET_JAX_CACHE=str(cache))
        )
        assert out.returncode == 0, out.stderr
        files = [f for _, _, names in os.walk(cache) for f in names] if cache.exists() else []
        assert bool(files) == (flag == "--compile-cache"), (flag, files)
    # Resumed, the run compiles nothing its first process did not leave in the cache: a fresh
    # state is placed like a restored one (jit lowers committed and uncommitted arguments to
    # different programs, so before that every program of the first resume was compiled again).
    cache = tmp_path / "on"
    before = sorted(f for _, _, names in os.walk(cache) for f in names)
    out = _run_cli(
        [*TINY, "--episodes", "4", "--test-every", "3", "--logdir", str(tmp_path / "run--compile-cache")],
        env=dict(env, PLANET_JAX_CACHE=str(cache)),
    )
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout + out.stderr
    after = sorted(f for _, _, names in os.walk(cache) for f in names)
    assert after == before, sorted(set(after) - set(before))


def test_end_of_run_line_reports_first_and_last_test_against_random_actions():
    from planet_jax.io.logger import learning_summary
    from planet_jax.train import describe_learning

    def train(episode, seed, ret, policy):
        return {"kind": "train_episode", "episode": episode, "seed": seed, "return": ret, "policy": policy}

    records = [
        train(1, 0, 100.0, "random"), train(1, 1, 140.0, "random"),
        train(2, 0, 90.0, "random"), train(2, 1, 130.0, "random"),
        {"kind": "test", "episode": 2, "seed": 0, "return": 20.0},
        {"kind": "test", "episode": 2, "seed": 1, "return": 30.0},
        train(3, 0, 400.0, "planner"), train(3, 1, 500.0, "planner"),
        {"kind": "update", "episode": 3, "seed": 0, "loss": 1.0},
        {"kind": "test", "episode": 4, "seed": 0, "return": 300.0},
        {"kind": "test", "episode": 4, "seed": 1, "return": 400.0},
    ]  # fmt: skip
    learned = learning_summary(records)
    # Phase means over seeds, s.e. with ddof 1: s.d. of (300, 400) is 70.71, / sqrt(2) = 50.
    assert learned["first_test"] == (2, 25.0, pytest.approx(5.0))
    assert learned["last_test"] == (4, 350.0, pytest.approx(50.0))
    assert learned["random_return"] == 115.0 and learned["random_episodes"] == 4
    assert describe_learning(learned) == (
        "; test return 25.0 +- 5.0 (episode 2) -> 350.0 +- 50.0 (episode 4); random actions 115.0 (seed episodes)"
    )
    # One seed, one phase, no marked random episodes (a run from before they were marked).
    one = learning_summary([{**r, "policy": None} for r in records[:5] if r.get("seed", 0) == 0])
    assert one["random_return"] is None and describe_learning(one) == "; test return 20.0 (episode 2)"
    assert describe_learning(learning_summary([])) == "; no test phase yet"
