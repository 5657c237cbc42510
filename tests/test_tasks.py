"""Tasks beyond the paper's seven: any Control Suite task, Gymnasium, registered environments."""

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import tiny_config, tiny_run
from planet_jax import config as C
from planet_jax.agent.acting import rollout
from planet_jax.io import tasks
from planet_jax.io.envs import BatchEnv, GymEnv, make_env
from planet_jax.io.replay import Replay

HERE = os.path.dirname(__file__)


@pytest.mark.parametrize("obs", ["pixels", "state"])
def test_a_suite_task_outside_the_paper(obs):
    cfg = tiny_config(obs=obs, task="pendulum-swingup")
    assert cfg.action_repeat == tasks.DEFAULT_ACTION_REPEAT == 2 and cfg.action_size == 1
    env = make_env(cfg, seed=0)
    first = env.reset()
    want = (64, 64, 3) if obs == "pixels" else (3,)  # orientation (2) + velocity (1)
    assert first.shape == want == cfg.obs_shape and first.dtype == (np.uint8 if obs == "pixels" else np.float32)
    obs_, reward, done = env.step(np.ones(1))
    assert obs_.shape == want and isinstance(reward, float) and not done


def test_the_camera_is_a_choice():
    cfg = tiny_config(obs="pixels", task="quadruped-walk")
    frames = [make_env(C.replace(cfg, camera=c), seed=0).reset() for c in (0, 2)]
    assert not np.array_equal(*frames)
    with pytest.raises(C.ConfigError, match="camera must be in 0..") as err:
        make_env(C.replace(cfg, camera=99), seed=0)
    assert str(err.value).count(".") >= 1 and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "task, says",
    [
        ("hoper-hop", "did you mean hopper-hop"),
        ("nonsense", "give a Control Suite task as DOMAIN-TASK"),
        ("gym:CartPole-v1", "has a Discrete action space; PlaNet plans continuous (Box) actions"),
        ("gym:NoSuchEnv-v0", "gym:NoSuchEnv-v0 could not be made"),
    ],
)
def test_unknown_and_unusable_tasks_are_one_sentence(task, says):
    with pytest.raises(C.ConfigError) as err:
        C.validate(C.replace(C.preset("debug"), task=task, obs="state"))
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("obs", ["pixels", "state"])
def test_a_gymnasium_task(obs):
    cfg = tiny_config(obs=obs, task="gym:Pendulum-v1")
    assert cfg.action_size == 1 and cfg.action_repeat == 2
    env = make_env(cfg, seed=0)
    first = env.reset(5)
    want = (64, 64, 3) if obs == "pixels" else (3,)
    assert first.shape == want == cfg.obs_shape and first.dtype == (np.uint8 if obs == "pixels" else np.float32)
    if obs == "pixels":
        assert first.std() > 0
    np.testing.assert_array_equal(env.reset(5), first)  # the seed alone sets the episode


def test_gym_actions_are_rescaled_to_the_bounds():
    """Pendulum's torque box is [-2, 2]: an action of 1 (or more) is 2, -0.5 is -1."""
    env = GymEnv("Pendulum-v1", 0, obs="state", action_repeat=1)
    env.reset(0)
    for action, torque in ((1.0, 2.0), (3.0, 2.0), (-0.5, -1.0), (0.0, 0.0)):
        env.step(np.array([action]))
        assert env._env.unwrapped.last_u == pytest.approx(torque)


def test_gym_episodes_end_at_the_time_limit_with_the_repeat():
    """Pendulum truncates at 200 steps: 100 agent steps at repeat 2, whatever episode_steps says."""
    env = GymEnv("Pendulum-v1", 0, obs="state", episode_steps=1000)
    env.reset(0)
    steps, done = 0, False
    while not done:
        _, _, done = env.step(np.zeros(1))
        steps += 1
    assert steps == 100


def test_a_registered_environment_terminates_and_is_stored_by_its_length():
    sys.path.insert(0, HERE)
    import toy_env  # noqa: F401  (registers toy-line)

    cfg = tiny_config(task="toy-line", episode_steps=200)
    assert cfg.task_spec.kind == "custom" and cfg.action_repeat == 1 and cfg.obs_shape == (2,)
    with pytest.raises(C.ConfigError, match="has no flat state|does not render frames"):
        C.validate(C.replace(cfg, obs="pixels"))
    envs = BatchEnv([make_env(cfg, s) for s in range(3)])
    # Pushed outwards, the point leaves [-1, 1] after a number of steps that depends on its start.
    episodes = rollout(envs, [1, 2, 3], lambda obs, prev, t: np.sign(obs[:, :1] + 1e-6), 1)
    lengths = [len(ep["reward"]) - 1 for ep in episodes]
    assert len(set(lengths)) > 1 and max(lengths) < envs.episode_length
    for ep, n in zip(episodes, lengths):
        assert np.abs(ep["obs"][n, 0]) > 1.0 and np.all(np.abs(ep["obs"][:n, 0]) <= 1.0)  # ends as it leaves
    replay = Replay()
    for ep in episodes:
        replay.add(ep)
    # Chunks never cross an episode's end; an episode shorter than the chunk is never drawn.
    length = sorted(lengths)[1] + 1  # longer than the shortest episode
    batch = replay.sample(np.random.default_rng(0), 64, length)
    for chunk in batch["obs"]:
        matches = [i for i, ep in enumerate(episodes) if any(
            np.array_equal(ep["obs"][s : s + length], chunk) for s in range(len(ep["obs"]) - length + 1))]  # fmt: skip
        assert matches and lengths[matches[0]] + 1 >= length
    with pytest.raises(Exception, match="no stored episode holds a chunk"):
        replay.sample(np.random.default_rng(0), 4, max(lengths) + 2)


@pytest.mark.slow
def test_a_registered_environment_trains_from_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "planet_jax.train", "--preset", "debug", "--task", "toy-line", "--env-module",
         "toy_env", "--obs", "state", "--episodes", "3", "--seed-episodes", "2", "--train-steps", "10",
         "--chunk-length", "4", "--test-every", "3", "--test-episodes", "2", "--episode-steps", "100",
         "--logdir", str(tmp_path / "toy"), "--no-progress"],  # fmt: skip
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    replay = Replay.load(tmp_path / "toy" / "replay" / "seed-0")
    assert len(replay) == 3 and len({len(ep["reward"]) for ep in replay.episodes}) >= 1
    unknown = subprocess.run(
        [sys.executable, "-m", "planet_jax.train", "--task", "toy-line", "--logdir", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown task 'toy-line'" in unknown.stderr


@pytest.mark.parametrize("task, obs", [("cheetah-run", "pixels"), ("gym:Pendulum-v1", "state")])
def test_parallel_stepping_equals_sequential(task, obs):
    """5 environments in 2 worker processes: the same frames, rewards and ends as in-process."""
    from planet_jax.io.envs import make_batch_env

    cfg = tiny_config(obs=obs, task=task, episode_steps=40, chunk_length=4)
    seeds = [11, 12, 13, 14, 15]
    sequential, parallel = make_batch_env(cfg, seeds, workers=0), make_batch_env(cfg, seeds, workers=2)
    assert type(parallel).__name__ == "ParallelBatchEnv"
    try:
        rng = np.random.default_rng(0)
        np.testing.assert_array_equal(sequential.reset(seeds), parallel.reset(seeds))
        for _ in range(sequential.episode_length):
            actions = rng.uniform(-1, 1, (5, cfg.action_size))
            for a, b in zip(sequential.step(actions), parallel.step(actions), strict=True):
                np.testing.assert_array_equal(a, b)
        if obs == "pixels":
            np.testing.assert_array_equal(sequential.render(3, 32), parallel.render(3, 32))
    finally:
        sequential.close()
        parallel.close()


def test_a_dead_worker_is_reported_with_the_task(monkeypatch):
    from planet_jax.io.envs import EnvWorkerError, make_batch_env

    cfg = tiny_config(task="cartpole-balance", episode_steps=40, chunk_length=4)
    batch = make_batch_env(cfg, [1, 2, 3, 4], workers=2)
    batch.reset([1, 2, 3, 4])
    batch._procs[1].kill()
    batch._procs[1].join()
    with pytest.raises(EnvWorkerError, match=r"the worker stepping cartpole-balance environments 2..3 died"):
        batch.step(np.zeros((4, 1)))
    batch.close()


RUN = tiny_run(num_seeds=2, episodes=4, test_every=2, test_episodes=2, checkpoint_every=2)


def _records(logdir):
    from planet_jax.io.logger import MetricsLog

    return [{k: v for k, v in r.items() if k not in ("time", "update_seconds", "plan_ms_per_action")}
            for r in MetricsLog.read(str(logdir))]  # fmt: skip


@pytest.mark.slow
def test_a_run_with_env_workers_equals_one_without_and_survives_a_dead_worker(tmp_path, monkeypatch, capsys):
    """Training and test environments in 2 workers give the same run; a worker killed in
    episode 3 stops the run with one message (exit 1), and re-running resumes from the
    checkpoint of episode 2 to the same end."""
    from planet_jax.io.envs import ParallelBatchEnv
    from planet_jax.train import main as train_main

    assert train_main([*RUN, "--logdir", str(tmp_path / "seq")]) == 0
    step, calls = ParallelBatchEnv.step, [0]

    def step_then_kill(self, actions):
        calls[0] += 1
        if calls[0] == 85:  # episode 3: after 2 random episodes and a test phase, 25 steps each
            self._procs[0].kill()
            self._procs[0].join()
        return step(self, actions)

    monkeypatch.setattr(ParallelBatchEnv, "step", step_then_kill)
    par = str(tmp_path / "par")
    with pytest.raises(SystemExit) as exit_:
        train_main([*RUN, "--env-workers", "2", "--logdir", par])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "the worker stepping cartpole-balance environments 0..0 died" in err
    assert "re-run the same command to resume" in err
    monkeypatch.setattr(ParallelBatchEnv, "step", step)
    assert train_main([*RUN, "--env-workers", "2", "--logdir", par]) == 0
    assert "from the checkpoint at episode 2" in capsys.readouterr().out
    assert _records(par) == _records(tmp_path / "seq")
