import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import UPDATE_METRICS, random_batch, tiny_config
from planet_jax import config as C
from planet_jax.io.envs import ControlEnv
from planet_jax.io.replay import Replay
from planet_jax.model.state import create_train_state
from planet_jax.model.update import scan_updates, update
from planet_jax.ops import convs
from planet_jax.ops import rng as prng


def _random_episode(env, rng):
    obs, actions, rewards = [env.reset()], [np.zeros(env.action_size, np.float32)], [0.0]
    for _ in range(env.episode_length):
        a = rng.uniform(-1, 1, env.action_size).astype(np.float32)
        o, r, _ = env.step(a)
        obs.append(o)
        actions.append(a)
        rewards.append(r)
    return {"obs": np.stack(obs), "action": np.stack(actions), "reward": np.asarray(rewards, np.float32)}


def test_tiny_model_overfits_a_fixed_batch():
    cfg = tiny_config(task="cartpole-swingup", updates_per_call=10)
    env = ControlEnv("cartpole-swingup", seed=0, obs="state")
    rng = np.random.default_rng(0)
    replay = Replay()
    for _ in range(2):
        replay.add(_random_episode(env, rng))
    batch = replay.sample(rng, 8, 16)
    batches = jax.tree.map(lambda x: np.repeat(x[None], 50, 0), batch)
    state = create_train_state(prng.key(0), cfg=cfg)
    history = []
    for _ in range(8):
        state, metrics = update(state, batches, cfg=cfg)
        history.append(metrics)
    first = {k: float(history[0][k][0]) for k in ("image_mse", "reward_mse", "loss")}
    last = {k: float(history[-1][k][-1]) for k in ("image_mse", "reward_mse", "loss")}
    assert int(state.step) == 400
    # Reconstruction and reward errors fall by large factors; the loss (with its constant
    # Gaussian normaliser and free-nats floor) falls too.
    assert last["image_mse"] < first["image_mse"] / 20, (first, last)
    assert last["reward_mse"] < first["reward_mse"] / 10, (first, last)
    assert last["loss"] < first["loss"]


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_vmapped_update_equals_separate_updates(obs, monkeypatch):
    # Pixels: the matmul conv forms (the CPU and GPU default; custom VJPs, window-by-window
    # products) vmapped over agents, as `train --num-seeds N` runs them on a GPU.
    monkeypatch.setattr(convs, "WIDE_WINDOW", 1)
    cfg = tiny_config(obs=obs, updates_per_call=2, conv_impl="matmul")
    keys = jax.random.split(prng.key(0), 2)
    # Two agents' states, stacked (initialising them under vmap is `train`'s business, and
    # the sweep tests check it; here it would only compile a second initialiser).
    singles = [create_train_state(k, cfg=cfg) for k in keys]
    states = jax.tree.map(lambda *x: jnp.stack(x), *singles)
    batches = random_batch(cfg, 4, 8, lead=(2, 2))  # [seed, C, B, L, ...]
    vmapped = jax.jit(jax.vmap(functools.partial(scan_updates, cfg=cfg)))
    new_states, metrics = vmapped(states, batches)
    for i in range(2):
        single, m = update(singles[i], jax.tree.map(lambda x, i=i: x[i], batches), cfg=cfg)
        for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(new_states.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(np.asarray(m["loss"]), np.asarray(metrics["loss"][i]), rtol=1e-5)


def test_update_compiles_once_and_reports_metrics():
    cfg = tiny_config(updates_per_call=2)
    traced = jax.jit(chex.assert_max_traces(scan_updates, n=1), static_argnames="cfg", donate_argnums=0)
    state = create_train_state(prng.key(0), cfg=cfg)
    for seed in range(3):
        state, metrics = traced(state, random_batch(cfg, 4, 8, seed=seed, lead=(2,)), cfg=cfg)
    assert int(state.step) == 6
    for name in UPDATE_METRICS:
        assert metrics[name].shape == (2,) and np.isfinite(np.asarray(metrics[name])).all(), name
    chex.clear_trace_counter()


def test_tf1_adam_is_tf_train_adam_optimizer():
    """`make_optimizer`'s default chain against a numpy transcription of TF1's clip + Adam.

    tf.clip_by_global_norm, then tf.train.AdamOptimizer's update:
    lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); m, v as in Adam; theta -= lr_t * m / (sqrt(v) + eps).
    A large eps (0.1) against small gradients makes the two placements of eps differ
    clearly; `adam_form=optax` must equal optax.adam instead.
    """
    import optax

    from planet_jax.model.state import make_optimizer

    cfg = tiny_config(adam_eps=0.1, grad_clip=1.0, learning_rate=0.01)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}
    grads = [{"w": jnp.asarray(rng.normal(size=(3, 2)) * s, jnp.float32)} for s in (0.01, 0.2, 5.0, 0.05)]

    lr, eps, b1, b2 = 0.01, 0.1, 0.9, 0.999
    theta, m, v = np.asarray(params["w"], np.float64), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = np.asarray(g["w"], np.float64)
        g = g * min(1.0, 1.0 / np.sqrt((g**2).sum()))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        theta = theta - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)

    def run(opt):
        p, state = params, opt.init(params)
        for g in grads:
            updates, state = opt.update(g, state, p)
            p = optax.apply_updates(p, updates)
        return np.asarray(p["w"])

    tf1 = run(make_optimizer(cfg))
    np.testing.assert_allclose(tf1, theta, rtol=1e-5, atol=1e-7)
    ours_optax = run(make_optimizer(C.replace(cfg, adam_form="optax")))
    reference_optax = run(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr, eps=eps)))
    np.testing.assert_allclose(ours_optax, reference_optax, rtol=1e-6)
    assert np.abs(tf1 - ours_optax).max() > 1e-3
    # Both forms keep optax's Adam state, so checkpoints have one structure.
    structure = jax.tree.structure
    assert structure(make_optimizer(cfg).init(params)) == structure(
        make_optimizer(C.replace(cfg, adam_form="optax")).init(params)
    )
