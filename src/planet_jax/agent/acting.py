"""Acting in environments: one episode per environment of a batch, under any policy.

    policy = PlannerPolicy(programs.act_explore, state, cfg, envs_per_seed, keys)
    episodes = rollout(envs, seeds, policy, cfg.action_size)   # [{obs, action, reward}] per env

A policy maps (obs [M, ...], prev_action [M, A], t) -> action [M, A] for the M = N x E
environments of N agents; `PlannerPolicy` plans with the compiled act program and keeps the
agents' beliefs on the device, `RandomPolicy` draws uniform actions (the seed episodes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from planet_jax import sweeps
from planet_jax.config import Config
from planet_jax.model import rssm
from planet_jax.ops import distributed


def fold(key: jax.Array, *data: int) -> jax.Array:
    """`key` folded with each of `data` in turn: the keys of an episode or test phase."""
    for d in data:
        key = jax.random.fold_in(key, d)
    return key


def rollout(
    envs,
    seeds: list[int],
    policy: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    action_size: int,
) -> list[dict[str, np.ndarray]]:
    """One episode in each environment (reset with `seeds`), in the replay's layout.

    policy(obs [M, ...], prev_action [M, A], t) -> action [M, A]. Episodes end at their
    own length: one that terminates early is cut after its last step (the batch keeps
    stepping the others; see `envs.BatchEnv`).
    """
    obs = envs.reset(seeds)
    m = len(seeds)
    prev = np.zeros((m, action_size), np.float32)
    all_obs, all_act, all_rew = [obs], [prev], [np.zeros(m, np.float32)]
    lengths = np.full(m, envs.episode_length)
    for t in range(envs.episode_length):
        action = np.asarray(policy(obs, prev, t), np.float32)
        obs, reward, done = envs.step(action)
        all_obs.append(obs)
        all_act.append(action)
        all_rew.append(reward)
        prev = action
        lengths = np.where(done & (lengths == envs.episode_length), t + 1, lengths)  # the first end counts
        if done.all():
            break
    o, a, r = np.stack(all_obs, 1), np.stack(all_act, 1), np.stack(all_rew, 1)
    return [{"obs": o[i, : n + 1], "action": a[i, : n + 1], "reward": r[i, : n + 1]} for i, n in enumerate(lengths)]


# Each agent's key for env step t, in one compiled call: an eager vmap retraces and runs op
# by op every step, some 30 times the compiled call's cost (on a GPU, a third of a
# paper-size action).
fold_in_keys = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


class PlannerPolicy:
    """The planner for N seeds x M environments; keeps the beliefs on device.

    N counts this process's agents; `put` makes their host arrays global (see `distributed`).
    """

    def __init__(self, act_fn, state, cfg: Config, envs_per_seed: int, key: jax.Array, put=lambda x: x):
        self.act_fn, self.params, self.cfg = act_fn, state.params, cfg
        self.noise_scale = state.hyper["exploration_noise"]  # [R]
        self.put = put
        self.n, self.m = len(distributed.share(len(sweeps.rows(cfg)))), envs_per_seed
        self.belief = put(rssm.initial((self.n, self.m), cfg))
        self.key = put(key)  # [N]
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, obs: np.ndarray, prev: np.ndarray, t: int) -> np.ndarray:
        start = time.perf_counter()
        n, m = self.n, self.m
        keys = fold_in_keys(self.key, t)
        action, self.belief = self.act_fn(
            self.params,
            self.belief,
            self.put(prev.reshape(n, m, -1)),
            self.put(obs.reshape(n, m, *obs.shape[1:])),
            keys,
            self.noise_scale,
        )
        action = distributed.to_local(action).reshape(n * m, -1)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return action


class RandomPolicy:
    """Uniform actions in [-1, 1] for E environments per agent, each agent's from its own
    generator seeded by (seed, episode), so a resumed run draws the same ones."""

    def __init__(self, seeds: Sequence[int], episode: int, envs_per_seed: int, action_size: int):
        self.rngs = [np.random.default_rng([s, 1, episode]) for s in seeds]
        self.e, self.a = envs_per_seed, action_size

    def __call__(self, obs: np.ndarray, prev: np.ndarray, t: int) -> np.ndarray:
        return np.concatenate([rng.uniform(-1, 1, (self.e, self.a)) for rng in self.rngs]).astype(np.float32)
