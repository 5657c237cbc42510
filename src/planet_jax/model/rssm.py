"""The recurrent state-space model as pure functions of a parameter pytree.

Shapes: B batch, T time, D = cfg.deter_size (h), S = cfg.stoch_size (z), A actions,
E = cfg.embed_size. The `ssm` variant has D = 0 and `rnn` has S = 0: the arrays are
simply empty, so every function below serves all three variants.

  initial(batch_shape, cfg)                          -> State [*batch_shape]
  prior_step(params, prev, action, key, cfg)         -> State        p(s_t | s_{t-1}, a_{t-1})
  posterior_step(params, prev, action, embed, key, cfg) -> (post, prior)  q(s_t | s_{t-1}, a_{t-1}, e_t)
  observe(params, embeds, actions, key, cfg)         -> (posts, priors) [B, T]  one lax.scan
  imagine(params, start, actions, key, cfg)          -> priors [B, T]           one lax.scan

`params` is the `cell` entry of `networks.init_params`. Actions follow the replay
convention: actions[:, t] is a_{t-1}, the action that led to observation t.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from planet_jax.config import Config
from planet_jax.model.networks import Modules


@struct.dataclass
class State:
    """A model state s_t = (h_t, z_t) with the statistics z_t was drawn from.

    deter: [..., D] h_t; stoch: [..., S] z_t; mean, std: [..., S] of p or q(z_t | ...).
    """

    deter: jax.Array
    stoch: jax.Array
    mean: jax.Array
    std: jax.Array

    @property
    def features(self) -> jax.Array:
        """[..., D + S] the input of the decoder and reward head."""
        return jnp.concatenate([self.deter, self.stoch], -1)

    def dist(self) -> distrax.MultivariateNormalDiag:
        """The diagonal Gaussian over z_t."""
        return distrax.MultivariateNormalDiag(self.mean, self.std)


def initial(batch_shape: tuple[int, ...], cfg: Config, dtype=jnp.float32) -> State:
    """All-zero state (h_0 = 0, z_0 = 0) of shape [*batch_shape]."""
    d, s = cfg.deter_size, cfg.stoch_size
    return State(
        deter=jnp.zeros((*batch_shape, d), dtype),
        stoch=jnp.zeros((*batch_shape, s), dtype),
        mean=jnp.zeros((*batch_shape, s), dtype),
        std=jnp.ones((*batch_shape, s), dtype),
    )


def _cell(cfg: Config):
    return Modules(cfg).cell


def prior_stats(params, prev: State, action: jax.Array, *, cfg: Config) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The deterministic part of the prior step: (h_t, mean, std), no sampling."""
    return _cell(cfg).apply({"params": params}, prev.deter, prev.stoch, action, cfg.embed_size, method="transition")


def sample(mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
    """z = mean + std * eps, eps ~ N(0, I) (reparameterised)."""
    return mean + std * jax.random.normal(key, mean.shape, mean.dtype)


def prior_step(params, prev: State, action: jax.Array, key: jax.Array, *, cfg: Config) -> State:
    """One transition p(s_t | s_{t-1}, a_{t-1}). prev: State [...], action: [..., A]."""
    deter, mean, std = prior_stats(params, prev, action, cfg=cfg)
    return State(deter, sample(mean, std, key), mean, std)


def posterior_step(
    params, prev: State, action: jax.Array, embed: jax.Array, key: jax.Array, *, cfg: Config
) -> tuple[State, State]:
    """One filtering step. embed: [..., E]. Returns (posterior, prior) States [...].

    The prior shares h_t with the posterior; its z is not sampled (it is only compared
    through its statistics), so prior.stoch is the prior mean.
    """
    deter, p_mean, p_std, q_mean, q_std = _cell(cfg).apply(
        {"params": params}, prev.deter, prev.stoch, action, embed, method="filter"
    )
    post = State(deter, sample(q_mean, q_std, key), q_mean, q_std)
    return post, State(deter, p_mean, p_mean, p_std)


def _time_major(x):
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), x)


def observe(
    params, embeds: jax.Array, actions: jax.Array, key: jax.Array, *, cfg: Config, start: State | None = None
) -> tuple[State, State]:
    """Posterior over a sequence, one `lax.scan` over time.

    embeds: [B, T, E]; actions: [B, T, A] (a_{t-1}); start: State [B] (default `initial`).
    Returns (posteriors, priors), States [B, T].
    """
    batch, steps = actions.shape[:2]
    if start is None:
        start = initial((batch,), cfg, embeds.dtype)
    keys = jax.random.split(key, steps)

    def step(prev, inputs):
        embed, action, k = inputs
        post, prior = posterior_step(params, prev, action, embed, k, cfg=cfg)
        return post, (post, prior)

    _, (posts, priors) = jax.lax.scan(step, start, (jnp.swapaxes(embeds, 0, 1), jnp.swapaxes(actions, 0, 1), keys))
    return _time_major(posts), _time_major(priors)


def imagine(params, start: State, actions: jax.Array, key: jax.Array, *, cfg: Config) -> State:
    """Open-loop prior rollout under an action sequence, one `lax.scan` over time.

    start: State [B]; actions: [B, T, A], actions[:, t] is applied to reach step t + 1.
    Returns priors, States [B, T] (the states after each action).
    """
    keys = jax.random.split(key, actions.shape[1])

    def step(prev, inputs):
        action, k = inputs
        state = prior_step(params, prev, action, k, cfg=cfg)
        return state, state

    _, states = jax.lax.scan(step, start, (jnp.swapaxes(actions, 0, 1), keys))
    return _time_major(states)


def kl_divergence(post: State, prior: State) -> jax.Array:
    """KL(q || p) summed over latent dimensions: [...]. Zero for the `rnn` variant."""
    if post.mean.shape[-1] == 0:
        return jnp.zeros(post.mean.shape[:-1], post.mean.dtype)
    return post.dist().kl_divergence(prior.dist())


def entropy(state: State) -> jax.Array:
    """Entropy of the Gaussian over z: [...]."""
    if state.mean.shape[-1] == 0:
        return jnp.zeros(state.mean.shape[:-1], state.mean.dtype)
    return state.dist().entropy()
