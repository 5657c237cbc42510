"""The variational objective of PlaNet: reconstruction, reward and KL with free nats.

Per chunk step t (B chunks of T steps), as the official code's `compute_objectives`
(google-research/planet, planet/training/utility.py):
  loss = image_scale * mean_bt[-ln p(x_t | s_t)] + reward_scale * mean_bt[-ln p(r_t | s_t)]
         + kl_scale * mean_bt[max(0, KL(q(z_t | ...) || p(z_t | s_{t-1}, a_{t-1})) - free_nats)]
Every term is the mean over batch *and* time of its per-step value (`tf.reduce_mean`;
Kaixhin/PlaNet also takes `mean(dim=(0, 1))`), not the paper's sum over time: the
optimizer's settings (learning rate, eps 1e-4, clip at global norm 1000) were tuned for
this scale. Frames and rewards are Normal(mean, 1), so a step's image term sums over all
64 x 64 x 3 pixels. `max(0, KL - free_nats)` is the official form: the same gradient as
`max(free_nats, KL)`, without the constant.

Latent overshooting (D = cfg.loss.overshooting_distance > 1) replaces the per-step KL term
by an average over distances d = 1..D of the KL between the posterior at t and the prior
predicted d steps ahead from the posterior at t - d, with weight 1 for d = 1 and beta
(overshooting_kl_scale) for d > 1, free nats per term, and the posterior targets of
d > 1 under stop-gradient:
  (1/D) * [clip(KL_{t,1}) + beta * sum_{d=2..D, t-d >= 0} clip(KL(sg(q_t) || p_{t|t-d}))]
with clip(kl) = max(0, kl - free_nats), then the same mean over batch and time. All
distances are computed at once: one `lax.scan` over d advances the predictions started
from every posterior state of the chunk together (`overshooting_kl`); `overshooting_kl_loop`
is the same sum as a plain double loop over start times and distances, its readable
definition.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from planet_jax import sweeps
from planet_jax.config import Config
from planet_jax.model import rssm
from planet_jax.model.networks import Modules
from planet_jax.model.preprocess import prepare_obs
from planet_jax.ops import compiler


def clipped_kl(kl: jax.Array, free_nats: float) -> jax.Array:
    """max(0, KL - free_nats) per step (the official form): KL below the free nats costs and teaches nothing."""
    return jnp.maximum(kl - free_nats, 0.0)


def overshooting_kl(
    cell_params,
    posts: rssm.State,
    priors: rssm.State,
    actions: jax.Array,
    key: jax.Array,
    *,
    cfg: Config,
    hyper: dict | None = None,
) -> jax.Array:
    """The (latent-overshooting) KL term per step, free nats applied: [B, T].

    Entry t holds the one-step KL at t and the d > 1 terms of the predictions started from
    the posterior at t (targets t + d); only the mean over B and T enters the loss.

    posts, priors: States [B, T] from `observe`; actions: [B, T, A]; hyper: per-agent
    free_nats and overshooting_kl_scale (default: the config's).
    """
    h = hyper if hyper is not None else sweeps.hyper_values(cfg)
    D, beta, fn = cfg.loss.overshooting_distance, h["overshooting_kl_scale"], h["free_nats"]
    if cfg.stoch_size == 0:  # the deterministic `rnn` has no latent distribution
        return jnp.zeros(actions.shape[:2], actions.dtype)
    one_step = clipped_kl(rssm.kl_divergence(posts, priors), fn)
    if D <= 1:
        return one_step
    steps = actions.shape[1]
    target = jax.lax.stop_gradient(posts)
    pad = lambda x, value: jnp.pad(x, ((0, 0), (0, D), (0, 0)), constant_values=value)  # noqa: E731
    actions_p, mean_p, std_p = pad(actions, 0.0), pad(target.mean, 0.0), pad(target.std, 1.0)
    keys = jax.random.split(key, D)

    def step(state, j):
        # state: States [B, T], the predictions for times t0 + j - 1 started at every t0.
        action = jax.lax.dynamic_slice_in_dim(actions_p, j, steps, axis=1)
        state = rssm.prior_step(cell_params, state, action, keys[j - 1], cfg=cfg)
        goal = rssm.State(
            target.deter,
            target.stoch,
            jax.lax.dynamic_slice_in_dim(mean_p, j, steps, axis=1),
            jax.lax.dynamic_slice_in_dim(std_p, j, steps, axis=1),
        )
        valid = (jnp.arange(steps) + j < steps) & (j >= 2)
        kl = clipped_kl(rssm.kl_divergence(goal, state), fn)
        return state, jnp.where(valid, kl, 0.0)

    _, far = jax.lax.scan(step, posts, jnp.arange(1, D + 1))
    return (one_step + beta * far.sum(0)) / D


def overshooting_kl_loop(
    cell_params,
    posts: rssm.State,
    priors: rssm.State,
    actions: jax.Array,
    key: jax.Array,
    *,
    cfg: Config,
    hyper: dict | None = None,
) -> jax.Array:
    """`overshooting_kl` as the paper's equation reads: a loop over start times t0 and
    distances d, one prior step at a time. The readable definition, equal to the
    vectorised form up to rounding (tested); Python loops, so for small T and D only.

    The prior step at distance d draws its noise from `split(key, D)[d - 1]` for all starts
    at once ([B, T, S]), as the vectorised form does, so both sample the same states.
    """
    h = hyper if hyper is not None else sweeps.hyper_values(cfg)
    D, beta, fn = cfg.loss.overshooting_distance, h["overshooting_kl_scale"], h["free_nats"]
    if cfg.stoch_size == 0:
        return jnp.zeros(actions.shape[:2], actions.dtype)
    one_step = clipped_kl(rssm.kl_divergence(posts, priors), fn)
    if D <= 1:
        return one_step
    batch, steps = actions.shape[:2]
    target = jax.lax.stop_gradient(posts)
    noise = [rssm.sample(jnp.zeros((batch, steps, cfg.stoch_size)), 1.0, k) for k in jax.random.split(key, D)]
    far = jnp.zeros((batch, steps))
    for t0 in range(steps):
        state = jax.tree.map(lambda x, t0=t0: x[:, t0], posts)  # the posterior at t0: [B]
        for d in range(1, min(D, steps - 1 - t0) + 1):
            t = t0 + d  # p(s_t | s_t0, a_t0..t-1): one more prior step
            deter, mean, std = rssm.prior_stats(cell_params, state, actions[:, t], cfg=cfg)
            state = rssm.State(deter, mean + std * noise[d - 1][:, t0], mean, std)
            if d >= 2:  # d = 1 is the one-step term
                goal = jax.tree.map(lambda x, t=t: x[:, t], target)
                far = far.at[:, t0].add(clipped_kl(rssm.kl_divergence(goal, state), fn))
    return (one_step + beta * far) / D


def world_model_loss(
    params, batch: dict, key: jax.Array, *, cfg: Config, hyper: dict | None = None
) -> tuple[jax.Array, dict]:
    """Negative ELBO of a batch of chunks and its parts.

    batch: obs [B, T, *obs_shape] (uint8 frames or float32 states), action [B, T, A],
    reward [B, T]; hyper: per-agent loss weights and free nats (default: the config's).
    Returns (loss, metrics): every term is a mean over batch and time (see the module doc).
    """
    with compiler.precision(cfg):
        return _world_model_loss(params, batch, key, cfg=cfg, hyper=hyper)


def _world_model_loss(
    params, batch: dict, key: jax.Array, *, cfg: Config, hyper: dict | None
) -> tuple[jax.Array, dict]:
    h = hyper if hyper is not None else sweeps.hyper_values(cfg)
    k_pre, k_obs, k_os = jax.random.split(key, 3)
    mods = Modules(cfg)
    pixels = cfg.env.obs == "pixels"
    x = prepare_obs(batch["obs"], k_pre, pixels=pixels, bits=cfg.env.image_bits)
    embeds = mods.encoder.apply({"params": params["encoder"]}, x)
    posts, priors = rssm.observe(params["cell"], embeds, batch["action"], k_obs, cfg=cfg)
    features = posts.features

    obs_mean = mods.decoder.apply({"params": params["decoder"]}, features)
    obs_axes = tuple(range(2, x.ndim))
    image_ll = distrax.Normal(obs_mean, 1.0).log_prob(x).sum(obs_axes)  # [B, T]
    reward_mean = mods.reward.apply({"params": params["reward"]}, features)
    reward_ll = distrax.Normal(reward_mean, 1.0).log_prob(batch["reward"])  # [B, T]

    kl = rssm.kl_divergence(posts, priors)  # [B, T]
    kl_term = overshooting_kl(params["cell"], posts, priors, batch["action"], k_os, cfg=cfg, hyper=h)  # [B, T]

    image_loss = -image_ll.mean()
    reward_loss = -reward_ll.mean()
    kl_loss = kl_term.mean()
    loss = h["image_scale"] * image_loss + h["reward_scale"] * reward_loss + h["kl_scale"] * kl_loss
    metrics = {
        "loss": loss,
        "image_loss": image_loss,
        "reward_loss": reward_loss,
        "kl_loss": kl_loss,
        "kl": kl.mean(),
        "prior_entropy": rssm.entropy(priors).mean(),
        "posterior_entropy": rssm.entropy(posts).mean(),
        "reward_mse": jnp.mean((reward_mean - batch["reward"]) ** 2),
        "image_mse": jnp.mean((obs_mean - x) ** 2),
    }
    return loss, metrics
