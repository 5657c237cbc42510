"""A trained agent from Python: load a run's checkpoint, then act, observe and imagine.

    agent = Agent.load("runs/cheetah-run-pixels-paper-seed0")    # the newest checkpoint
    env = agent.make_env(seed=123)
    obs = env.reset()
    agent.reset()
    done = False
    while not done:
        obs, reward, done = env.step(agent.act(obs))

`act` keeps the belief (the posterior state and the previous action) between calls, for
one environment (`obs` [*obs_shape]) or a batch (`obs` [N, *obs_shape], after
`reset(batch=N)`). `observe`, `imagine` and `decode` expose the world model for analysis.
`planet_jax.evaluate` runs its episodes through this class.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import config as C
from planet_jax import sweeps
from planet_jax.io.checkpoint import Checkpointer, CheckpointError
from planet_jax.model import rssm
from planet_jax.ops import rng

# One compiled call per step: an eager `fold_in` dispatches op by op, at every step.
_fold_in = jax.jit(jax.random.fold_in)


def load_run(logdir: str, step: int | None = None):
    """(cfg, state with an agent axis, step) of a run directory's checkpoint (the newest by default)."""
    from planet_jax.agent.programs import initializer

    path = os.path.join(logdir, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{logdir} is not a run directory (no config.json).")
    with open(path) as f:
        cfg = C.from_dict(json.load(f))
    ckpt = Checkpointer(os.path.join(logdir, "checkpoints"))
    try:
        state, _, step = ckpt.restore(jax.eval_shape(initializer(cfg)), step)
    finally:
        ckpt.close()
    return cfg, state, step


class Agent:
    """One trained agent (one row of a run): the world model's parameters and a belief.

    cfg: the run's Config; params: this agent's parameter pytree; seed: the agent's seed
    (the planner's random numbers derive from it); step: the checkpoint's episode count.
    """

    def __init__(self, cfg: C.Config, params, *, seed: int = 0, step: int | None = None):
        self.cfg, self.params, self.seed, self.step = cfg, params, seed, step
        self._key = jax.random.fold_in(rng.key(seed), 5)
        self.reset()

    @classmethod
    def load(cls, logdir: str, step: int | None = None, agent: int = 0) -> Agent:
        """Agent `agent` (row of a sweep, seed index) of the run in `logdir`, from the
        checkpoint of `step` episodes (default: the newest)."""
        cfg, state, step = load_run(logdir, step)
        rows = sweeps.rows(cfg)
        if not 0 <= agent < len(rows):
            raise CheckpointError(
                f"agent must be in 0..{len(rows) - 1} for this run of {len(rows)} agents, got {agent}."
            )
        params = jax.tree.map(lambda x: x[agent], state.params)
        return cls(cfg, params, seed=rows[agent][0], step=step)

    def make_env(self, seed: int):
        """An environment of the run's task and observation mode, seeded with `seed`."""
        from planet_jax.io.envs import make_env

        return make_env(self.cfg, seed)

    def reset(self, batch: int | None = None) -> None:
        """Start an episode (in `batch` environments at once; default one)."""
        self._batch = batch
        n = 1 if batch is None else batch
        self.belief = rssm.initial((n,), self.cfg)
        self.prev_action = jnp.zeros((n, self.cfg.action_size))
        self._t = 0

    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """The planned action for the newest observation: [A] for one environment, [N, A]
        after `reset(batch=N)`. With `explore`, the run's exploration noise is added."""
        from planet_jax.agent.planner import act_jit

        obs = np.asarray(obs)
        batched = obs[None] if self._batch is None else obs
        action, self.belief = act_jit(
            self.params, self.belief, self.prev_action, jnp.asarray(batched), _fold_in(self._key, self._t),
            cfg=self.cfg, explore=explore,
        )  # fmt: skip
        self.prev_action = action
        self._t += 1
        out = np.asarray(action)
        return out[0] if self._batch is None else out

    def observe(self, obs: np.ndarray, actions: np.ndarray, key: jax.Array | None = None):
        """Posterior states of a sequence: obs [B, T, *obs_shape], actions [B, T, A] with
        actions[:, t] = a_{t-1} (0 at t = 0). Returns (posteriors, priors), rssm.State [B, T]."""
        from planet_jax.model.networks import Modules
        from planet_jax.model.preprocess import prepare_obs

        key = rng.key(0) if key is None else rng.fast(key)
        k_pre, k_obs = jax.random.split(key)
        x = prepare_obs(jnp.asarray(obs), k_pre, pixels=self.cfg.env.obs == "pixels", bits=self.cfg.env.image_bits)
        embeds = Modules(self.cfg).encoder.apply({"params": self.params["encoder"]}, x)
        return rssm.observe(self.params["cell"], embeds, jnp.asarray(actions), k_obs, cfg=self.cfg)

    def imagine(self, start: rssm.State, actions: np.ndarray, key: jax.Array | None = None) -> rssm.State:
        """The prior alone from `start` (State [B]) under actions [B, T, A]: State [B, T]."""
        key = rng.key(0) if key is None else rng.fast(key)
        return rssm.imagine(self.params["cell"], start, jnp.asarray(actions), key, cfg=self.cfg)

    def decode(self, states: rssm.State) -> np.ndarray:
        """The decoder's mean observation of states [...]: uint8 frames or float32 vectors."""
        from planet_jax.model.networks import Modules
        from planet_jax.model.preprocess import postprocess

        out = Modules(self.cfg).decoder.apply({"params": self.params["decoder"]}, states.features)
        if self.cfg.env.obs == "pixels":
            return np.asarray(postprocess(out, self.cfg.env.image_bits))
        return np.asarray(out)

    def reward(self, states: rssm.State) -> np.ndarray:
        """The reward head's mean of states [...]."""
        from planet_jax.model.networks import Modules

        return np.asarray(Modules(self.cfg).reward.apply({"params": self.params["reward"]}, states.features))
