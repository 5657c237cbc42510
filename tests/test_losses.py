import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_batch, tiny_config
from planet_jax import config as C
from planet_jax.model import rssm
from planet_jax.model.losses import clipped_kl, overshooting_kl, overshooting_kl_loop, world_model_loss
from planet_jax.model.networks import Modules, init_params
from planet_jax.ops import rng as prng


def _posts(cfg, batch=2, steps=9):
    params = init_params(prng.key(0), cfg)["cell"]
    k1, k2 = jax.random.split(prng.key(1))
    embeds = jax.random.normal(k1, (batch, steps, cfg.embed_size))
    actions = jax.random.uniform(k2, (batch, steps, cfg.action_size), minval=-1, maxval=1)
    posts, priors = rssm.observe(params, embeds, actions, prng.key(2), cfg=cfg)
    return params, posts, priors, actions


def test_overshooting_distance_one_is_the_plain_kl():
    cfg = tiny_config(overshooting_distance=1, free_nats=1.0)
    params, posts, priors, actions = _posts(cfg)
    plain = clipped_kl(rssm.kl_divergence(posts, priors), 1.0)
    np.testing.assert_allclose(
        np.asarray(overshooting_kl(params, posts, priors, actions, prng.key(3), cfg=cfg)), np.asarray(plain)
    )
    # And the whole loss is unchanged between D = 0 and D = 1.
    batch = random_batch(cfg, 2, 9)
    p = init_params(prng.key(0), cfg)
    l0, _ = world_model_loss(p, batch, prng.key(4), cfg=C.replace(cfg, overshooting_distance=0))
    l1, _ = world_model_loss(p, batch, prng.key(4), cfg=cfg)
    assert float(l0) == float(l1)


@pytest.mark.parametrize("distance, beta", [(3, 1.0), (5, 0.5)])
def test_overshooting_equals_double_loop(distance, beta):
    cfg = tiny_config(overshooting_distance=distance, overshooting_kl_scale=beta, free_nats=0.5)
    params, posts, priors, actions = _posts(cfg)
    key = prng.key(7)
    fast = overshooting_kl(params, posts, priors, actions, key, cfg=cfg)

    reference = overshooting_kl_loop(params, posts, priors, actions, key, cfg=cfg)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(reference), rtol=1e-5)


def test_overshooting_targets_are_stop_gradient():
    # The d > 1 terms see the posterior statistics (mean, std) only as targets, which are
    # under stop-gradient; the start states (h, z) do receive gradient.
    cfg = tiny_config(overshooting_distance=3, free_nats=0.0)
    params, posts, priors, actions = _posts(cfg)

    def far_only(mean, std, stoch):
        p = posts.replace(mean=mean, std=std, stoch=stoch)
        one = clipped_kl(rssm.kl_divergence(p, priors), 0.0)
        return (overshooting_kl(params, p, priors, actions, prng.key(0), cfg=cfg) * 3 - one).sum()

    g_mean, g_std, g_stoch = jax.grad(far_only, argnums=(0, 1, 2))(posts.mean, posts.std, posts.stoch)
    # (The one-step term is removed by subtraction, which leaves rounding noise of 1e-7.)
    np.testing.assert_allclose(np.asarray(g_mean), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_std), 0.0, atol=1e-6)
    assert np.abs(np.asarray(g_stoch)).max() > 1e-3


def test_image_and_reward_terms_are_unit_variance_gaussians():
    cfg = tiny_config(free_nats=0.0, kl_scale=0.0)
    params = init_params(prng.key(0), cfg)
    batch = random_batch(cfg, 2, 5)
    loss, m = world_model_loss(params, batch, prng.key(1), cfg=cfg)
    # Recompute the two log-likelihoods by hand from the same posterior features.
    mods = Modules(cfg)
    k_pre, k_obs, _ = jax.random.split(prng.key(1), 3)
    x = jnp.asarray(batch["obs"])
    embeds = mods.encoder.apply({"params": params["encoder"]}, x)
    posts, _ = rssm.observe(params["cell"], embeds, batch["action"], k_obs, cfg=cfg)
    mean = mods.decoder.apply({"params": params["decoder"]}, posts.features)
    r = mods.reward.apply({"params": params["reward"]}, posts.features)
    d = x.shape[-1]
    image_nll = (0.5 * ((x - mean) ** 2).sum(-1) + 0.5 * d * np.log(2 * np.pi)).mean()
    reward_nll = (0.5 * (batch["reward"] - r) ** 2 + 0.5 * np.log(2 * np.pi)).mean()
    np.testing.assert_allclose(float(m["image_loss"]), float(image_nll), rtol=1e-5)
    np.testing.assert_allclose(float(m["reward_loss"]), float(reward_nll), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(image_nll + 10 * reward_nll), rtol=1e-5)


def test_pixel_loss_sums_over_pixels():
    cfg = tiny_config(obs="pixels")
    params = init_params(prng.key(0), cfg)
    batch = random_batch(cfg, 2, 4)
    loss, m = jax.jit(functools.partial(world_model_loss, cfg=cfg))(params, batch, prng.key(1))
    # The mean per-step image NLL >= the Gaussian constant of 64*64*3 pixels (one step's, not T's).
    constant = 64 * 64 * 3 * 0.5 * np.log(2 * np.pi)
    assert constant < float(m["image_loss"]) < 2 * constant
    assert np.isfinite(float(loss))


def _gaussian_kl(mq, sq, mp, sp):
    """KL(N(mq, sq^2) || N(mp, sp^2)) of diagonal Gaussians, summed over the last axis (closed form)."""
    return float(np.sum(np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5))


def test_loss_is_the_official_mean_over_batch_and_time():
    """The loss against the official `compute_objectives`, written out in plain numpy.

    Per step (b, t): ln N(x | mean, 1) summed over the observation, ln N(r | mean, 1),
    max(0, KL(q || p) - free_nats); each term's mean over all B x T steps (`tf.reduce_mean`),
    then image scale 1, reward scale 10, KL scale 1. The free nats sit at the median step's
    KL, so the clip binds at some steps and not at others.
    """
    cfg = tiny_config()
    params = init_params(prng.key(0), cfg)
    batch = random_batch(cfg, 3, 7)
    key = prng.key(1)
    mods = Modules(cfg)
    _, k_obs, _ = jax.random.split(key, 3)
    embeds = mods.encoder.apply({"params": params["encoder"]}, jnp.asarray(batch["obs"]))
    posts, priors = rssm.observe(params["cell"], embeds, batch["action"], k_obs, cfg=cfg)
    obs_mean = np.asarray(mods.decoder.apply({"params": params["decoder"]}, posts.features), np.float64)
    r_mean = np.asarray(mods.reward.apply({"params": params["reward"]}, posts.features), np.float64)
    q = [np.asarray(a, np.float64) for a in (posts.mean, posts.std, priors.mean, priors.std)]

    B, T = batch["reward"].shape
    kls = np.array([[_gaussian_kl(*(a[b, t] for a in q)) for t in range(T)] for b in range(B)])
    free_nats = float(np.median(kls))
    assert (kls < free_nats).any() and (kls > free_nats).any()
    image = reward = divergence = 0.0
    for b in range(B):
        for t in range(T):
            x = np.asarray(batch["obs"][b, t], np.float64)
            image += np.sum(-0.5 * (x - obs_mean[b, t]) ** 2 - 0.5 * np.log(2 * np.pi))
            reward += -0.5 * (batch["reward"][b, t] - r_mean[b, t]) ** 2 - 0.5 * np.log(2 * np.pi)
            divergence += max(0.0, kls[b, t] - free_nats)
    image, reward, divergence = image / (B * T), reward / (B * T), divergence / (B * T)
    expected = -1.0 * image - 10.0 * reward + 1.0 * divergence

    loss, m = world_model_loss(params, batch, key, cfg=C.replace(cfg, free_nats=free_nats))
    np.testing.assert_allclose(float(m["image_loss"]), -image, rtol=1e-5)
    np.testing.assert_allclose(float(m["reward_loss"]), -reward, rtol=1e-5)
    np.testing.assert_allclose(float(m["kl_loss"]), divergence, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
