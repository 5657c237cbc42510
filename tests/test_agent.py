"""`planet_jax.Agent`: a trained run's agent from Python."""

import jax
import numpy as np
import pytest

from helpers import tiny_run
from planet_jax import Agent
from planet_jax.agent import load_run
from planet_jax.io.checkpoint import CheckpointError
from planet_jax.train import main as train_main

RUN = tiny_run(num_seeds=2, episodes=3, test_every=3, test_episodes=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("agent") / "run")
    assert train_main([*RUN, "--logdir", logdir]) == 0
    return logdir


def _episode(agent, seed):
    env = agent.make_env(seed)
    obs, done, actions, total = env.reset(), False, [], 0.0
    agent.reset()
    while not done:
        action = agent.act(obs)
        obs, reward, done = env.step(action)
        actions.append(action)
        total += reward
    return np.array(actions), total


@pytest.mark.slow
def test_load_picks_the_agent_and_the_step(run):
    cfg, state, step = load_run(run)
    agent = Agent.load(run, agent=1)
    assert agent.step == step == 3 and agent.seed == 1
    for a, b in zip(jax.tree.leaves(agent.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[1])
    with pytest.raises(CheckpointError, match="agent must be in 0..1"):
        Agent.load(run, agent=2)


@pytest.mark.slow
def test_an_episode_is_reproducible_and_the_belief_is_kept(run):
    agent = Agent.load(run)
    actions, total = _episode(agent, seed=7)
    assert actions.shape == (25, 1) and np.all(np.abs(actions) <= 1) and total > 0
    again, total_again = _episode(agent, seed=7)  # reset() starts over: the same episode
    np.testing.assert_array_equal(actions, again)
    assert total == total_again
    # Without reset, the second call sees a belief that the first one updated.
    agent.reset()
    obs = agent.make_env(7).reset()
    first, second = agent.act(obs), agent.act(obs)
    agent.reset()
    assert np.array_equal(agent.act(obs), first) and not np.array_equal(first, second)


@pytest.mark.slow
def test_a_batch_of_environments(run):
    agent = Agent.load(run)
    envs = [agent.make_env(s) for s in (1, 2, 3)]
    agent.reset(batch=3)
    action = agent.act(np.stack([e.reset() for e in envs]))
    assert action.shape == (3, 1)


@pytest.mark.slow
def test_observe_imagine_decode_and_reward(run):
    agent = Agent.load(run)
    env = agent.make_env(3)
    obs, actions = [env.reset()], [np.zeros(1, np.float32)]
    for t in range(10):
        a = np.array([np.sin(t)], np.float32)
        obs.append(env.step(a)[0])
        actions.append(a)
    obs, actions = np.stack(obs)[None], np.stack(actions)[None]  # [1, 11, ...]
    posts, priors = agent.observe(obs, actions)
    assert posts.deter.shape == (1, 11, agent.cfg.deter_size) and priors.mean.shape == posts.mean.shape
    last = jax.tree.map(lambda x: x[:, -1], posts)
    future = agent.imagine(last, np.zeros((1, 4, 1), np.float32))
    assert future.stoch.shape == (1, 4, agent.cfg.stoch_size)
    assert agent.decode(posts).shape == obs.shape and agent.reward(future).shape == (1, 4)


@pytest.mark.slow
def test_the_readme_example_runs(run, tmp_path, monkeypatch, capsys):
    import os
    import re

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = readme[readme.index("use the agent from Python") :]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    assert 'Agent.load("runs/' in code
    code = re.sub(r'Agent\.load\("[^"]+"\)', f"Agent.load({run!r})", code)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith("return ")
    assert os.path.getsize(tmp_path / "episode.mp4") > 1000
