"""The cross-entropy method in latent space, and batched acting.

  cem(score, key, ...)                  -> mean action sequence [H, A]   generic CEM
  plan(params, belief, key, cfg)        -> action [A]                    PlaNet's planner
  act(params, belief, prev_action, obs, key, cfg, explore) -> (action [N, A], belief [N])

Everything is one traced function: the I iterations are a `lax.scan`, each scoring J
candidate sequences with one `imagine` scan over the horizon, and `act` vmaps the search
over environments or maps over them (`PlannerConfig.env_axis`; in training also over seeds).
No host round trip per iteration or step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from planet_jax.config import Config, ConfigError, PlannerConfig
from planet_jax.model import rssm
from planet_jax.model.networks import Modules
from planet_jax.model.preprocess import prepare_obs
from planet_jax.ops import backends, compiler


def check_planner(p: PlannerConfig) -> None:
    """Raise ConfigError for settings the planner cannot run with."""
    for name in ("horizon", "num_iterations", "num_candidates", "num_elites"):
        value = getattr(p, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}.")
    if p.num_elites > p.num_candidates:
        raise ConfigError(f"num_elites must be at most num_candidates ({p.num_candidates}), got {p.num_elites}.")


MIN_VARIANCE = 1e-6
"""Added to the elites' variance before the square root, as the official planner does."""


def refit(elites: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The sampling distribution refitted to elites [K, H, A]: (mean, std), each [H, A].

    std = sqrt(var + MIN_VARIANCE) with the population variance (`tf.nn.moments`), as
    google-research/planet's `cross_entropy_method`: a dimension whose elites agree (all
    clipped to a bound, say) keeps a std of at least 1e-3 and goes on searching, where a
    plain std would collapse to 0 for the rest of the search.
    """
    return elites.mean(0), jnp.sqrt(elites.var(0) + MIN_VARIANCE)


def cem(
    score: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    *,
    horizon: int,
    action_size: int,
    num_iterations: int,
    num_candidates: int,
    num_elites: int,
) -> jax.Array:
    """Maximise score(actions [J, H, A], key) -> [J] over sequences in [-1, 1]^(H x A).

    Starts from N(0, I); each iteration samples J sequences, clips them to the bounds,
    and refits the mean and std of every (step, action) to the top K by score (`refit`).
    Returns the final mean [H, A].
    """

    def iteration(carry, key):
        mean, std = carry
        k_sample, k_score = jax.random.split(key)
        noise = jax.random.normal(k_sample, (num_candidates, horizon, action_size), mean.dtype)
        candidates = jnp.clip(mean + std * noise, -1.0, 1.0)
        returns = score(candidates, k_score)
        _, elite_index = jax.lax.top_k(returns, num_elites)
        return refit(candidates[elite_index]), returns.max()

    init = (jnp.zeros((horizon, action_size)), jnp.ones((horizon, action_size)))
    (mean, _), _ = jax.lax.scan(iteration, init, jax.random.split(key, num_iterations))
    return mean


def score_sequences(params, belief: rssm.State, actions: jax.Array, key: jax.Array, *, cfg: Config) -> jax.Array:
    """Sum over the horizon of the predicted reward means along a stochastic prior rollout.

    belief: State [] (one environment's posterior); actions: [J, H, A]. Returns [J].
    Both forms of `PlannerConfig.reward_pass` (see `reward_pass`) give
    `reward(imagine(...).features).sum(-1)` with the same samples (tested). `per_step` adds
    each step's reward inside the rollout's scan instead of storing the [J, H, F] features
    and reading them back (the faster form on CPUs); `after` runs the reward head once over
    all H x J features, so the rollout's sequential chain of kernels is shorter (the faster
    form on GPUs, whose search is bound by kernel latency). Measured:
    experiments/results/README.md#backend-defaults.
    """
    reward_head = Modules(cfg).reward

    def reward(features):
        return reward_head.apply({"params": params["reward"]}, features)

    start = jax.tree.map(lambda x: jnp.broadcast_to(x, (actions.shape[0], *x.shape)), belief)
    keys = jax.random.split(key, actions.shape[1])  # as in `rssm.imagine`
    per_step = reward_pass(cfg) == "per_step"

    def step(carry, inputs):
        prev, total = carry
        action, k = inputs
        state = rssm.prior_step(params["cell"], prev, action, k, cfg=cfg)
        if per_step:
            return (state, total + reward(state.features)), None
        return (state, total), state.features

    init = (start, jnp.zeros(actions.shape[0], actions.dtype))
    xs = (jnp.swapaxes(actions, 0, 1), keys)
    (_, total), features = jax.lax.scan(step, init, xs, unroll=unroll_steps(cfg))
    return total if per_step else reward(features).sum(0)


def reward_pass(cfg: Config) -> str:
    """`per_step` or `after`: the config's `reward_pass`, with `auto` resolved for the backend."""
    return backends.reward_pass(cfg.planner.reward_pass)


def unroll_steps(cfg: Config) -> int:
    """Rollout steps per loop iteration: the config's `rollout_unroll`, with 0 (auto) resolved for the backend."""
    return backends.rollout_unroll(cfg.planner.rollout_unroll, cfg.planner.horizon)


def plan(params, belief: rssm.State, key: jax.Array, *, cfg: Config, score: Callable | None = None) -> jax.Array:
    """PlaNet's planner for one environment: belief State [] -> first action [A].

    Candidates are scored by `score_sequences`: the sum over the horizon of the reward
    head's mean along a stochastic prior rollout from the current posterior state.
    score: another scorer with its signature (the experimental rollout kernel's); default
    `score_sequences`, looked up at the call.
    """
    p = cfg.planner
    check_planner(p)
    mean = cem(
        functools.partial(score or score_sequences, params, belief, cfg=cfg),
        key,
        horizon=p.horizon,
        action_size=cfg.action_size,
        num_iterations=p.num_iterations,
        num_candidates=p.num_candidates,
        num_elites=p.num_elites,
    )
    return mean[0]


def env_mode(cfg: Config) -> str:
    """`map` or `vmap`: the config's `env_axis`, with `auto` resolved for the backend."""
    return backends.axis(cfg.planner.env_axis)


def plan_batch(params, belief: rssm.State, keys: jax.Array, *, cfg: Config, plan_one: Callable = plan) -> jax.Array:
    """`plan` (or `plan_one`, a search with its signature) for N environments: belief State
    [N], keys [N] -> first actions [N, A].

    `vmap` runs one search over N x J candidates; `map` runs the N searches one after
    another (`lax.map`), the faster on a CPU because the activations of J candidates fit
    its cache and those of N x J may not (experiments/results/README.md#backend-defaults).
    Both give the same actions for the same keys (tested).
    """
    search = functools.partial(plan_one, params, cfg=cfg)
    if env_mode(cfg) == "vmap":
        return jax.vmap(search)(belief, keys)
    return jax.lax.map(lambda args: search(*args), (belief, keys))


def observe_step(params, belief: rssm.State, prev_action: jax.Array, obs: jax.Array, key: jax.Array, *, cfg: Config):
    """Filter one new observation into the belief. belief State [N]; prev_action [N, A]; obs [N, ...]."""
    k_pre, k_post = jax.random.split(key)
    x = prepare_obs(obs, k_pre, pixels=cfg.env.obs == "pixels", bits=cfg.env.image_bits)
    embed = Modules(cfg).encoder.apply({"params": params["encoder"]}, x)
    belief, _ = rssm.posterior_step(params["cell"], belief, prev_action, embed, k_post, cfg=cfg)
    return belief


def act(
    params,
    belief: rssm.State,
    prev_action: jax.Array,
    obs: jax.Array,
    key: jax.Array,
    noise_scale: jax.Array | float | None = None,
    *,
    cfg: Config,
    explore: bool,
    plan_one: Callable = plan,
) -> tuple[jax.Array, rssm.State]:
    """One agent step for N environments: posterior update with the newest frame, then CEM.

    belief: State [N] (`rssm.initial((N,), cfg)` at episode start, with prev_action 0);
    obs: [N, *obs_shape] as stored (uint8 frames). With `explore`, N(0, noise_scale) noise
    (default: the config's exploration_noise) is added to the planned action and the
    result clipped to [-1, 1]. plan_one: the search for one environment (`plan`'s signature).
    Returns (action [N, A], belief [N]).
    """
    k_obs, k_plan, k_noise = jax.random.split(key, 3)
    with compiler.precision(cfg):
        belief = observe_step(params, belief, prev_action, obs, k_obs, cfg=cfg)
        keys = jax.random.split(k_plan, prev_action.shape[0])
        action = plan_batch(params, belief, keys, cfg=cfg, plan_one=plan_one)
    if explore:
        scale = cfg.planner.exploration_noise if noise_scale is None else noise_scale
        noise = scale * jax.random.normal(k_noise, action.shape, action.dtype)
        action = jnp.clip(action + noise, -1.0, 1.0)
    return action, belief


act_jit = compiler.jit(act, static_argnames=("cfg", "explore"))
