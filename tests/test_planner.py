import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_config
from planet_jax import config as C
from planet_jax.agent.planner import act, cem, env_mode, plan, refit, reward_pass, score_sequences
from planet_jax.model import rssm
from planet_jax.model.networks import Modules, init_params
from planet_jax.ops import backends
from planet_jax.ops import rng as prng

H, A = 8, 2
TARGET = jnp.asarray(np.random.default_rng(0).uniform(-0.8, 0.8, (H, A)), jnp.float32)


def neg_sq_distance(actions, key):
    return -jnp.sum((actions - TARGET) ** 2, axis=(1, 2))


def test_cem_finds_the_known_optimum_that_random_search_misses():
    settings = dict(horizon=H, action_size=A, num_iterations=10, num_candidates=500, num_elites=50)
    best = cem(neg_sq_distance, prng.key(0), **settings)
    err = float(jnp.abs(best - TARGET).max())
    assert err < 0.05, err
    # Random search with the same number of evaluations (I x J) in [-1, 1]^(H x A).
    samples = jax.random.uniform(prng.key(1), (10 * 500, H, A), minval=-1, maxval=1)
    random_best = samples[jnp.argmax(neg_sq_distance(samples, None))]
    assert float(jnp.abs(random_best - TARGET).max()) > 0.3


def test_every_candidate_is_clipped_to_the_bounds():
    seen = []

    def score(actions, key):
        jax.debug.callback(lambda a: seen.append((float(a.min()), float(a.max()))), actions)
        return actions.sum((1, 2)) * 10.0  # pushes the mean far past +1

    best = cem(score, prng.key(0), horizon=3, action_size=2, num_iterations=4, num_candidates=64, num_elites=8)
    jax.block_until_ready(best)
    assert len(seen) == 4
    assert all(lo >= -1.0 and hi <= 1.0 for lo, hi in seen)
    assert float(best.max()) <= 1.0 and float(best.min()) > 0.5


def test_refit_is_the_official_moments_with_a_variance_floor():
    elites = np.random.default_rng(0).normal(size=(10, 4, 3)).astype(np.float32)
    elites[:, 1, 2] = 1.0  # elites that agree in one dimension, as when all are clipped to a bound
    mean, std = refit(jnp.asarray(elites))
    np.testing.assert_allclose(np.asarray(mean), elites.mean(0), rtol=1e-6)
    # tf.nn.moments' population variance, then sqrt(var + 1e-6) (planet/control/planning.py).
    np.testing.assert_allclose(np.asarray(std), np.sqrt(elites.var(0, ddof=0) + 1e-6), rtol=1e-5)
    assert float(std[1, 2]) == pytest.approx(1e-3, rel=1e-4)


def test_a_collapsed_dimension_keeps_searching():
    """Every elite clips to +1 in the first iterations; with the floor, later candidates still
    spread around the mean (a plain std would sample the same sequence J times)."""
    spreads = []

    def score(actions, key):
        jax.debug.callback(lambda a: spreads.append(float(np.asarray(a).std(0).min())), actions)
        return actions.sum((1, 2))

    best = cem(score, prng.key(0), horizon=2, action_size=1, num_iterations=8, num_candidates=64, num_elites=8)
    jax.block_until_ready(best)
    assert float(best.min()) > 0.99
    assert min(spreads) > 1e-4, spreads


def _agent(obs="state", **overrides):
    cfg = tiny_config(obs=obs, **overrides)
    params = init_params(prng.key(0), cfg)
    return cfg, params


@pytest.mark.parametrize("horizon", [1, 2, 5])
def test_scores_equal_reward_summed_over_an_imagined_rollout(horizon):
    cfg = tiny_config(horizon=horizon)
    params = init_params(prng.key(0), cfg)
    belief = jax.tree.map(lambda x: x[0] + 0.3, rssm.initial((1,), cfg))
    actions = jax.random.uniform(prng.key(1), (6, horizon, cfg.action_size), minval=-1, maxval=1)
    key = prng.key(2)
    start = jax.tree.map(lambda x: jnp.broadcast_to(x, (6, *x.shape)), belief)
    states = rssm.imagine(params["cell"], start, actions, key, cfg=cfg)  # [J, H]
    expected = Modules(cfg).reward.apply({"params": params["reward"]}, states.features).sum(-1)
    score = jax.jit(score_sequences, static_argnames="cfg")
    for form in ("per_step", "after"):
        for unroll in (1, horizon):
            scores = score(params, belief, actions, key, cfg=C.replace(cfg, reward_pass=form, rollout_unroll=unroll))
            np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
            assert len(set(np.asarray(scores).tolist())) == 6  # the candidates differ


def test_reward_pass_is_resolved_for_the_backend_and_checked():
    cfg = tiny_config()
    assert reward_pass(cfg) == ("per_step" if jax.default_backend() == "cpu" else "after")  # auto
    assert [backends.reward_pass("auto", b) for b in ("cpu", "gpu", "tpu")] == ["per_step", "after", "after"]
    assert backends.reward_pass("per_step", "gpu") == "per_step"
    assert reward_pass(C.replace(cfg, reward_pass="after")) == "after"
    with pytest.raises(C.ConfigError, match="reward_pass must be one of auto, per_step, after, got 'end'"):
        C.validate(C.replace(cfg, reward_pass="end"))


def test_unrolled_rollout_plans_the_same_action():
    cfg, params = _agent()
    belief = jax.tree.map(lambda x: x + 0.3, rssm.initial((), cfg))
    plan_jit = jax.jit(plan, static_argnames="cfg")
    actions = [
        plan_jit(params, belief, prng.key(3), cfg=C.replace(cfg, rollout_unroll=u)) for u in (1, 3, cfg.planner.horizon)
    ]
    np.testing.assert_allclose(actions[1], actions[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(actions[2], actions[0], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(actions[0]).max()) > 0.01  # a real plan, not the zero initial mean
    # auto (0): a loop on CPU, unrolled over the horizon on accelerators; negative refused.
    assert [backends.rollout_unroll(0, 12, b) for b in ("cpu", "gpu", "tpu")] == [1, 12, 12]
    assert backends.rollout_unroll(3, 12, "gpu") == 3
    with pytest.raises(C.ConfigError, match="rollout_unroll must be an integer >= 0"):
        C.validate(C.replace(cfg, rollout_unroll=-1))


@pytest.mark.parametrize("env_axis, form", [("vmap", "per_step"), ("map", "per_step"), ("vmap", "after")])
def test_batched_act_equals_per_environment_calls(env_axis, form):
    # vmap with the reward head after the rollout: the GPU defaults. (With the experimental
    # rollout kernel: tests/test_rollout_kernel.py.)
    cfg, params = _agent(obs="pixels", env_axis=env_axis, reward_pass=form)
    n = 3
    obs = np.random.default_rng(0).integers(0, 256, (n, *cfg.obs_shape), dtype=np.uint8)
    prev = jax.random.uniform(prng.key(1), (n, cfg.action_size), minval=-1, maxval=1)
    belief = rssm.initial((n,), cfg)
    key = prng.key(2)
    actions, new_belief = act(params, belief, prev, obs, key, cfg=cfg, explore=False)
    assert actions.shape == (n, cfg.action_size) and float(jnp.abs(actions).max()) <= 1.0
    # The same computation environment by environment, with the keys act derives.
    from planet_jax.agent.planner import observe_step

    k_obs, k_plan, _ = jax.random.split(key, 3)
    beliefs = observe_step(params, belief, prev, obs, k_obs, cfg=cfg)
    keys = jax.random.split(k_plan, n)
    for i in range(n):
        single = jax.tree.map(lambda x, i=i: x[i], beliefs)
        np.testing.assert_allclose(
            np.asarray(plan(params, single, keys[i], cfg=cfg)), np.asarray(actions[i]), atol=1e-5
        )
        np.testing.assert_allclose(np.asarray(new_belief.deter[i]), np.asarray(single.deter), atol=1e-6)


def test_exploration_noise_only_when_exploring():
    cfg, params = _agent(exploration_noise=0.3)
    obs = np.zeros((64, *cfg.obs_shape), np.float32)
    belief, prev = rssm.initial((64,), cfg), jnp.zeros((64, cfg.action_size))
    calm, _ = act(params, belief, prev, obs, prng.key(0), cfg=cfg, explore=False)
    noisy, _ = act(params, belief, prev, obs, prng.key(0), cfg=cfg, explore=True)
    diff = np.asarray(noisy - calm)
    assert np.abs(diff).max() > 0.1  # noise of std 0.3 was added...
    assert float(jnp.abs(noisy).max()) <= 1.0  # ...and clipped
    unclipped = np.abs(np.asarray(calm)) < 0.5
    assert 0.2 < diff[unclipped].std() < 0.4


def test_planner_compiles_once():
    cfg, params = _agent()

    def act_explore(params, belief, prev, obs, key):
        return act(params, belief, prev, obs, key, cfg=cfg, explore=True)

    traced = jax.jit(chex.assert_max_traces(act_explore, n=1))
    belief, prev = rssm.initial((2,), cfg), jnp.zeros((2, cfg.action_size))
    for seed in range(3):
        obs = np.random.default_rng(seed).normal(size=(2, *cfg.obs_shape)).astype(np.float32)
        prev, belief = traced(params, belief, prev, obs, prng.key(seed))
    chex.clear_trace_counter()


@pytest.mark.parametrize(
    "updates, message",
    [
        ({"num_elites": 65}, r"num_elites must be at most num_candidates \(64\)"),
        ({"horizon": 0}, "horizon must be an integer >= 1"),
    ],
)
def test_bad_planner_settings_are_rejected(updates, message):
    cfg, params = _agent()
    bad = C.replace(cfg, **updates)  # built without validation
    with pytest.raises(C.ConfigError, match=message):
        plan(params, rssm.initial((), cfg), prng.key(0), cfg=bad)
    with pytest.raises(C.ConfigError, match=message):
        C.validate(bad)


def test_env_axis_is_resolved_for_the_backend_and_checked():
    cfg, _ = _agent()
    assert env_mode(cfg) == ("map" if jax.default_backend() == "cpu" else "vmap")  # auto
    assert env_mode(C.replace(cfg, env_axis="vmap")) == "vmap"
    # The rule shared with programs.agent_mode, on every backend.
    assert [backends.axis("auto", b) for b in ("cpu", "gpu", "tpu")] == ["map", "vmap", "vmap"]
    assert backends.axis("map", "gpu") == "map" and backends.axis("vmap", "cpu") == "vmap"
    with pytest.raises(C.ConfigError, match="env_axis must be one of auto, vmap, map, got 'loop'"):
        C.validate(C.replace(cfg, env_axis="loop"))


def test_plan_returns_the_first_action_of_the_final_cem_mean(monkeypatch):
    """With a score whose optimum differs at every step, `plan` returns the first step's
    optimum; and it is exactly step 0 of a plain-loop CEM (no scan) on the same draws."""
    import planet_jax.agent.planner as planner

    cfg = C.validate(C.replace(tiny_config(), horizon=H, num_iterations=8, num_candidates=400, num_elites=40))
    target = np.random.default_rng(1).uniform(-0.8, 0.8, (H, cfg.action_size)).astype(np.float32)
    target[0], target[1], target[-1] = 0.6, -0.6, -0.2  # the first step's optimum is its own
    target = jnp.asarray(target)

    def score(params, belief, actions, key, cfg):
        return -jnp.sum((actions - target) ** 2, axis=(1, 2))

    monkeypatch.setattr(planner, "score_sequences", score)
    key = prng.key(3)
    action = plan(None, None, key, cfg=cfg)
    assert action.shape == (cfg.action_size,)
    np.testing.assert_allclose(action, target[0], atol=0.05)

    p = cfg.planner
    mean, std = np.zeros((H, cfg.action_size), np.float32), np.ones((H, cfg.action_size), np.float32)
    for k in jax.random.split(key, p.num_iterations):
        k_sample, _ = jax.random.split(k)
        noise = np.asarray(jax.random.normal(k_sample, (p.num_candidates, H, cfg.action_size), jnp.float32))
        candidates = np.clip(mean + std * noise, -1.0, 1.0)
        returns = -np.sum((candidates - np.asarray(target)) ** 2, axis=(1, 2))
        elites = candidates[np.argsort(-returns, kind="stable")[: p.num_elites]]
        mean, std = elites.mean(0), np.sqrt(elites.var(0) + 1e-6)
    np.testing.assert_allclose(action, mean[0], atol=1e-5)
