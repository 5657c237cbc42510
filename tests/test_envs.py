import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from planet_jax import config as C
from planet_jax.io import tasks
from planet_jax.io.envs import BatchEnv, ControlEnv, env_seed, make_batch_env


@pytest.mark.parametrize("task", list(tasks.PAPER_TASKS))
def test_every_task_gives_frames_and_actions(task):
    env = ControlEnv(task, seed=0, episode_steps=40)
    assert env.action_size == tasks.PAPER_ACTION_SIZES[task]
    assert ControlEnv(task, seed=0, obs="state").obs_shape == (tasks.PAPER_STATE_SIZES[task],)
    obs = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert obs.std() > 0  # a real picture, not a blank buffer
    assert env.action_repeat == tasks.PAPER_TASKS[task][2]
    obs, reward, done = env.step(np.zeros(env.action_size))
    assert obs.shape == (64, 64, 3) and isinstance(reward, float) and not done


def test_episode_length_reward_sum_and_done():
    # cartpole-balance is rewarded nearly every step when upright: the summed reward of
    # one agent step equals the sum over the 8 repeated simulator steps.
    env = ControlEnv("cartpole-balance", seed=0, obs="state")
    assert env.episode_length == 125
    env.reset()
    rewards, dones = [], []
    for _ in range(env.episode_length):
        _, r, d = env.step(np.zeros(1))
        rewards.append(r)
        dones.append(d)
    assert dones[-1] and not any(dones[:-1])
    assert 0 < max(rewards) <= 8.0 and rewards[0] > 1.0

    # The same sum from a raw dm_control environment with the same seed.
    from dm_control import suite

    raw = suite.load("cartpole", "balance", task_kwargs={"random": 0})
    raw.reset()
    first = sum(raw.step(np.zeros(1)).reward for _ in range(8))
    assert first == pytest.approx(rewards[0], rel=1e-6)


def test_same_seed_same_frames_different_seed_different_frames():
    def rollout(seed):
        env = ControlEnv("cheetah-run", seed=seed, episode_steps=40)
        frames = [env.reset()]
        actions = np.random.default_rng(0).uniform(-1, 1, (5, env.action_size))
        frames += [env.step(a)[0] for a in actions]
        frames.append(env.reset())  # the second episode is seeded too
        return np.stack(frames)

    a, b, c = rollout(1), rollout(1), rollout(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], c[0])


def test_reset_with_seed_reproduces_an_episode_whatever_came_before():
    env = ControlEnv("cup-catch", seed=0, episode_steps=20)
    first = env.reset(seed=123)
    env.step(np.ones(2))
    env.reset()
    env.reset(seed=7)
    np.testing.assert_array_equal(env.reset(seed=123), first)
    fresh = ControlEnv("cup-catch", seed=99, episode_steps=20)
    np.testing.assert_array_equal(fresh.reset(seed=123), first)
    assert not np.array_equal(fresh.reset(seed=124), first)


def test_state_observations():
    env = ControlEnv("walker-walk", seed=0, obs="state")
    obs = env.reset()
    assert obs.shape == (24,) and obs.dtype == np.float32 and env.obs_shape == (24,)


def test_batch_env_stacks():
    cfg = C.replace(C.preset("debug", "cheetah-run"), episode_steps=16)
    seeds = [env_seed(0, "train", i) for i in range(3)]
    batch = make_batch_env(cfg, seeds)
    first = batch.reset()
    assert first.shape == (3, 64, 64, 3)
    obs, reward, done = batch.step(np.zeros((3, 6)))
    assert obs.shape == (3, 64, 64, 3) and reward.shape == (3,) and done.shape == (3,)
    single = ControlEnv("cheetah-run", seed=seeds[1], episode_steps=16)
    np.testing.assert_array_equal(single.reset(), first[1])
    assert isinstance(batch, BatchEnv) and len(batch) == 3


def test_env_seeds_are_distinct():
    seeds = {env_seed(s, p, i) for s in range(3) for p in ("train", "test") for i in range(10)}
    assert len(seeds) == 60


def test_unknown_task_names_the_closest_ones():
    with pytest.raises(C.ConfigError, match=r"unknown task 'hoper-hop': did you mean hopper-hop"):
        ControlEnv("hoper-hop", seed=0)


def test_missing_gl_backend_is_one_clear_sentence():
    # osmesa is not installed on the machines this project targets; if it is, there is
    # no failure to report.
    code = textwrap.dedent(
        """
        from planet_jax.io.envs import ControlEnv
        ControlEnv('cartpole-swingup', seed=0).reset()
        print('RENDERED')
        """
    )
    env = dict(os.environ, MUJOCO_GL="osmesa")
    env.pop("PYOPENGL_PLATFORM", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if "RENDERED" in out.stdout:
        pytest.skip("OSMesa is installed here, so MUJOCO_GL=osmesa renders")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("planet_jax.io.envs.RenderError: MuJoCo could not render with MUJOCO_GL='osmesa'")
    assert "install an OpenGL backend" in last


def test_mujoco_gl_defaults_to_egl():
    code = (
        "import os; os.environ.pop('MUJOCO_GL', None)\nfrom planet_jax.io.envs import ControlEnv\n"
        "ControlEnv('cartpole-swingup', seed=0).reset(); print(os.environ['MUJOCO_GL'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "egl"


@pytest.mark.parametrize("task, steps", [("cheetah-run", 30), ("walker-walk", 21)])
def test_actions_are_clipped_and_repeated_as_on_the_raw_suite(task, steps):
    """Non-zero actions (some outside [-1, 1]) against dm_control stepped by hand: each action
    clipped to the spec, applied R times, rewards summed; the episode's last agent step is
    cut short when R does not divide `episode_steps` (21 = 10 x 2 + 1 for walker)."""
    from dm_control import suite

    from planet_jax.io.tasks import PAPER_TASKS as TASKS

    domain, name, repeat = TASKS[task]
    env = ControlEnv(task, 3, obs="state", episode_steps=steps)
    raw = suite.load(domain, name, task_kwargs={"random": 3})
    rng = np.random.default_rng(0)
    flat = lambda ts: np.concatenate([np.asarray(v, np.float32).ravel() for v in ts.observation.values()])  # noqa: E731
    np.testing.assert_array_equal(env.reset(), flat(raw.reset()))
    done, agent_steps, sim_steps, total = False, 0, 0, 0.0
    while not done:
        action = rng.uniform(-1.5, 1.5, env.action_size)
        obs, reward, done = env.step(action)
        want = 0.0
        for _ in range(min(repeat, steps - sim_steps)):
            time_step = raw.step(np.clip(action, -1, 1))
            want += time_step.reward
            sim_steps += 1
        agent_steps += 1
        np.testing.assert_array_equal(obs, flat(time_step))
        assert reward == pytest.approx(want, abs=1e-12)
        total += want
    assert total != 0.0
    assert agent_steps == env.episode_length == -(-steps // repeat) and sim_steps == steps
