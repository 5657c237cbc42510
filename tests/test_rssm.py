import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_config
from planet_jax.model import rssm
from planet_jax.model.losses import clipped_kl
from planet_jax.model.networks import init_params
from planet_jax.ops import rng as prng


def _setup(variant="rssm", batch=3, steps=7, seed=0):
    cfg = tiny_config(variant=variant)
    params = init_params(prng.key(seed), cfg)["cell"]
    k1, k2 = jax.random.split(prng.key(seed + 1))
    embeds = jax.random.normal(k1, (batch, steps, cfg.embed_size))
    actions = jax.random.uniform(k2, (batch, steps, cfg.action_size), minval=-1, maxval=1)
    return cfg, params, embeds, actions


def _assert_states_close(a: rssm.State, b: rssm.State):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["rssm", "ssm", "rnn"])
def test_observe_equals_python_loop(variant):
    cfg, params, embeds, actions = _setup(variant)
    key = prng.key(5)
    posts, priors = rssm.observe(params, embeds, actions, key, cfg=cfg)
    keys = jax.random.split(key, actions.shape[1])
    state = rssm.initial((actions.shape[0],), cfg)
    loop_posts, loop_priors = [], []
    for t in range(actions.shape[1]):
        state, prior = rssm.posterior_step(params, state, actions[:, t], embeds[:, t], keys[t], cfg=cfg)
        loop_posts.append(state)
        loop_priors.append(prior)
    stack = lambda states: jax.tree.map(lambda *xs: jnp.stack(xs, 1), *states)  # noqa: E731
    _assert_states_close(posts, stack(loop_posts))
    _assert_states_close(priors, stack(loop_priors))
    assert posts.deter.shape == (3, 7, cfg.deter_size) and posts.stoch.shape == (3, 7, cfg.stoch_size)
    assert posts.features.shape == (3, 7, cfg.feature_size)


@pytest.mark.parametrize("variant", ["rssm", "ssm", "rnn"])
def test_imagine_equals_python_loop(variant):
    cfg, params, embeds, actions = _setup(variant)
    posts, _ = rssm.observe(params, embeds, actions, prng.key(0), cfg=cfg)
    start = jax.tree.map(lambda x: x[:, -1], posts)
    key = prng.key(9)
    imagined = rssm.imagine(params, start, actions, key, cfg=cfg)
    keys = jax.random.split(key, actions.shape[1])
    state = start
    for t in range(actions.shape[1]):
        state = rssm.prior_step(params, state, actions[:, t], keys[t], cfg=cfg)
        _assert_states_close(jax.tree.map(lambda x, t=t: x[:, t], imagined), state)


def test_prior_is_stochastic_and_std_has_floor():
    cfg, params, embeds, actions = _setup()
    start = rssm.initial((3,), cfg)
    a = rssm.imagine(params, start, actions, prng.key(1), cfg=cfg)
    b = rssm.imagine(params, start, actions, prng.key(2), cfg=cfg)
    assert not np.allclose(a.stoch, b.stoch)
    np.testing.assert_allclose(a.mean[:, 0], b.mean[:, 0])  # the first step's statistics agree
    assert float(a.std.min()) >= cfg.model.min_std


def test_kl_equals_closed_form():
    rng = np.random.default_rng(0)
    mq, mp = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    sq, sp = rng.uniform(0.2, 2, (4, 5)), rng.uniform(0.2, 2, (4, 5))
    zeros = np.zeros((4, 0))
    q = rssm.State(zeros, mq, jnp.asarray(mq), jnp.asarray(sq))
    p = rssm.State(zeros, mp, jnp.asarray(mp), jnp.asarray(sp))
    closed = 0.5 * np.sum(sq**2 / sp**2 + (mp - mq) ** 2 / sp**2 - 1 + 2 * np.log(sp / sq), -1)
    np.testing.assert_allclose(np.asarray(rssm.kl_divergence(q, p)), closed, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(rssm.kl_divergence(q, q)), 0, atol=1e-6)
    # Entropy of a diagonal Gaussian: sum(log sigma) + S/2 log(2 pi e).
    np.testing.assert_allclose(
        np.asarray(rssm.entropy(q)), np.log(sq).sum(-1) + 5 / 2 * np.log(2 * np.pi * np.e), rtol=1e-5
    )


def test_free_nats_clip_per_step():
    kl = jnp.array([0.5, 2.9, 3.0, 3.5, 10.0])
    np.testing.assert_allclose(np.asarray(clipped_kl(kl, 3.0)), [0.0, 0.0, 0.0, 0.5, 7.0])  # max(0, KL - 3)
    grad = jax.grad(lambda k: clipped_kl(k, 3.0).sum())(kl)
    np.testing.assert_allclose(np.asarray(grad)[[0, 1, 3, 4]], [0.0, 0.0, 1.0, 1.0])


def test_rnn_variant_has_no_latent_distribution():
    cfg, params, embeds, actions = _setup("rnn")
    posts, priors = rssm.observe(params, embeds, actions, prng.key(0), cfg=cfg)
    assert posts.stoch.shape[-1] == 0 and posts.deter.shape[-1] == cfg.model.deter_size
    np.testing.assert_array_equal(np.asarray(rssm.kl_divergence(posts, priors)), 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_gru_is_tf_gru_block_cell():
    """`networks.GRUCell` against a numpy transcription of GRUBlockCell's documented equations.

    x_h_prev = [x, h_prev]; [r_bar u_bar] = x_h_prev W_ru + b_ru; r, u = sigmoid(.);
    c = tanh([x, h_prev * r] W_c + b_c); h = (1 - u) c + u h_prev; b_ru starts at 1.0 and
    b_c at 0.0. A GRU that resets after the hidden matrix (flax.linen.GRUCell, cuDNN)
    differs from this by far more than the tolerance with these weights.
    """
    from planet_jax.model.networks import GRUCell

    size, inputs = 6, 4
    cell = GRUCell(size)
    x = jax.random.normal(prng.key(0), (3, inputs))
    h = jax.random.normal(prng.key(1), (3, size))
    params = cell.init(prng.key(2), x, h)["params"]
    # The initial biases and the kernels' shapes, as TF1 creates them.
    np.testing.assert_array_equal(np.asarray(params["gates"]["bias"]), np.ones(2 * size))
    np.testing.assert_array_equal(np.asarray(params["candidate"]["bias"]), np.zeros(size))
    assert params["gates"]["kernel"].shape == (inputs + size, 2 * size)
    assert params["candidate"]["kernel"].shape == (inputs + size, size)
    limit = np.sqrt(6.0 / (inputs + size + 2 * size))  # Glorot-uniform over the whole [in + H, 2H] kernel
    assert 0.8 * limit < float(jnp.abs(params["gates"]["kernel"]).max()) <= limit

    # Random biases too, so that the reference checks where each bias enters.
    params = jax.tree.map(lambda p: p + jax.random.normal(prng.key(3), p.shape), params)
    w_ru, b_ru = (np.asarray(params["gates"][k], np.float64) for k in ("kernel", "bias"))
    w_c, b_c = (np.asarray(params["candidate"][k], np.float64) for k in ("kernel", "bias"))
    xs, hs = np.asarray(x, np.float64), np.asarray(h, np.float64)
    expected = np.zeros_like(hs)
    for i in range(xs.shape[0]):
        ru = _sigmoid(np.concatenate([xs[i], hs[i]]) @ w_ru + b_ru)
        r, u = ru[:size], ru[size:]
        c = np.tanh(np.concatenate([xs[i], hs[i] * r]) @ w_c + b_c)
        expected[i] = (1 - u) * c + u * hs[i]
    got = np.asarray(cell.apply({"params": params}, x, h))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    # Reset after the matrix (the cuDNN form) with the same weights: not what TF computes.
    cudnn = np.zeros_like(hs)
    for i in range(xs.shape[0]):
        ru = _sigmoid(np.concatenate([xs[i], hs[i]]) @ w_ru + b_ru)
        r, u = ru[:size], ru[size:]
        c = np.tanh(xs[i] @ w_c[:inputs] + r * (hs[i] @ w_c[inputs:]) + b_c)
        cudnn[i] = (1 - u) * c + u * hs[i]
    assert np.abs(cudnn - expected).max() > 1e-2
