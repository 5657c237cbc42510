"""Tasks beyond the paper's seven: any Control Suite task, Gymnasium, registered environments."""

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import tiny_config
from planet_jax import config as C
from planet_jax import tasks
from planet_jax.envs import BatchEnv, GymEnv, make_env
from planet_jax.replay import Replay
from planet_jax.train import rollout

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
