import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_batch, tiny_config
from planet_jax import config as C
from planet_jax import rssm
from planet_jax.losses import clipped_kl, overshooting_kl, world_model_loss
from planet_jax.networks import Modules, init_params


def _posts(cfg, batch=2, steps=9):
    params = init_params(jax.random.key(0), cfg)["cell"]
    k1, k2 = jax.random.split(jax.random.key(1))
    embeds = jax.random.normal(k1, (batch, steps, cfg.embed_size))
    actions = jax.random.uniform(k2, (batch, steps, cfg.action_size), minval=-1, maxval=1)
    posts, priors = rssm.observe(params, embeds, actions, jax.random.key(2), cfg=cfg)
    return params, posts, priors, actions


def test_overshooting_distance_one_is_the_plain_kl():
    cfg = tiny_config(overshooting_distance=1, free_nats=1.0)
    params, posts, priors, actions = _posts(cfg)
    plain = clipped_kl(rssm.kl_divergence(posts, priors), 1.0).sum(-1)
    np.testing.assert_allclose(
        np.asarray(overshooting_kl(params, posts, priors, actions, jax.random.key(3), cfg=cfg)), np.asarray(plain)
    )
    # And the whole loss is unchanged between D = 0 and D = 1.
    batch = random_batch(cfg, 2, 9)
    p = init_params(jax.random.key(0), cfg)
    l0, _ = world_model_loss(p, batch, jax.random.key(4), cfg=C.replace(cfg, overshooting_distance=0))
    l1, _ = world_model_loss(p, batch, jax.random.key(4), cfg=cfg)
    assert float(l0) == float(l1)


@pytest.mark.parametrize("distance, beta", [(3, 1.0), (5, 0.5)])
def test_overshooting_equals_double_loop(distance, beta):
    cfg = tiny_config(overshooting_distance=distance, overshooting_kl_scale=beta, free_nats=0.5)
    params, posts, priors, actions = _posts(cfg)
    key = jax.random.key(7)
    fast = overshooting_kl(params, posts, priors, actions, key, cfg=cfg)

    batch, steps, fn = actions.shape[0], actions.shape[1], cfg.loss.free_nats
    keys = jax.random.split(key, distance)
    noise = [jax.random.normal(k, (batch, steps, cfg.stoch_size)) for k in keys]
    total = clipped_kl(rssm.kl_divergence(posts, priors), fn).sum(-1)
    far = jnp.zeros(batch)
    for t0 in range(steps):
        state = jax.tree.map(lambda x, t0=t0: x[:, t0], posts)
        for d in range(1, distance + 1):
            t = t0 + d
            if t >= steps:
                break
            deter, mean, std = rssm.prior_stats(params, state, actions[:, t], cfg=cfg)
            state = rssm.State(deter, mean + std * noise[d - 1][:, t0], mean, std)
            if d >= 2:
                target = jax.tree.map(lambda x, t=t: x[:, t], posts)
                far = far + clipped_kl(rssm.kl_divergence(target, state), fn)
    reference = (total + beta * far) / distance
    np.testing.assert_allclose(np.asarray(fast), np.asarray(reference), rtol=1e-5)


def test_overshooting_targets_are_stop_gradient():
    # The d > 1 terms see the posterior statistics (mean, std) only as targets, which are
    # under stop-gradient; the start states (h, z) do receive gradient.
    cfg = tiny_config(overshooting_distance=3, free_nats=0.0)
    params, posts, priors, actions = _posts(cfg)

    def far_only(mean, std, stoch):
        p = posts.replace(mean=mean, std=std, stoch=stoch)
        one = clipped_kl(rssm.kl_divergence(p, priors), 0.0).sum(-1)
        return (overshooting_kl(params, p, priors, actions, jax.random.key(0), cfg=cfg) * 3 - one).sum()

    g_mean, g_std, g_stoch = jax.grad(far_only, argnums=(0, 1, 2))(posts.mean, posts.std, posts.stoch)
    # (The one-step term is removed by subtraction, which leaves rounding noise of 1e-7.)
    np.testing.assert_allclose(np.asarray(g_mean), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_std), 0.0, atol=1e-6)
    assert np.abs(np.asarray(g_stoch)).max() > 1e-3


def test_image_and_reward_terms_are_unit_variance_gaussians():
    cfg = tiny_config(free_nats=0.0, kl_scale=0.0)
    params = init_params(jax.random.key(0), cfg)
    batch = random_batch(cfg, 2, 5)
    loss, m = world_model_loss(params, batch, jax.random.key(1), cfg=cfg)
    # Recompute the two log-likelihoods by hand from the same posterior features.
    mods = Modules(cfg)
    k_pre, k_obs, _ = jax.random.split(jax.random.key(1), 3)
    x = jnp.asarray(batch["obs"])
    embeds = mods.encoder.apply({"params": params["encoder"]}, x)
    posts, _ = rssm.observe(params["cell"], embeds, batch["action"], k_obs, cfg=cfg)
    mean = mods.decoder.apply({"params": params["decoder"]}, posts.features)
    r = mods.reward.apply({"params": params["reward"]}, posts.features)
    d = x.shape[-1]
    image_nll = (0.5 * ((x - mean) ** 2).sum(-1) + 0.5 * d * np.log(2 * np.pi)).sum(1).mean()
    reward_nll = (0.5 * (batch["reward"] - r) ** 2 + 0.5 * np.log(2 * np.pi)).sum(1).mean()
    np.testing.assert_allclose(float(m["image_loss"]), float(image_nll), rtol=1e-5)
    np.testing.assert_allclose(float(m["reward_loss"]), float(reward_nll), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(image_nll + 10 * reward_nll), rtol=1e-5)


def test_pixel_loss_sums_over_pixels():
    cfg = tiny_config(obs="pixels")
    params = init_params(jax.random.key(0), cfg)
    batch = random_batch(cfg, 2, 4)
    loss, m = jax.jit(functools.partial(world_model_loss, cfg=cfg))(params, batch, jax.random.key(1))
    # Per-step image NLL >= the Gaussian constant of 64*64*3 pixels.
    assert float(m["image_loss"]) > 4 * 64 * 64 * 3 * 0.5 * np.log(2 * np.pi)
    assert np.isfinite(float(loss))
