"""Observation preprocessing as in the paper, done on device when a batch is formed.

Frames stay uint8 in the replay store. `preprocess` quantises them to `bits` bits (5 in
the paper), scales to [-0.5, 0.5) and adds uniform dequantisation noise of one bin, so the
model sees a continuous density over the quantised values. `postprocess` maps model
outputs back to uint8 frames for videos.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def quantize(frames: jax.Array, bits: int = 5) -> jax.Array:
    """uint8 frames [..., H, W, 3] -> float32 bin lower edges in [-0.5, 0.5), no noise."""
    bins = 2**bits
    x = jnp.floor(frames.astype(jnp.float32) / 2 ** (8 - bits))
    return x / bins - 0.5


def preprocess(frames: jax.Array, key: jax.Array, bits: int = 5) -> jax.Array:
    """uint8 frames [..., H, W, 3] -> float32 in [-0.5, 0.5) with one bin of uniform noise."""
    noise = jax.random.uniform(key, frames.shape, jnp.float32, 0.0, 1.0 / 2**bits)
    return quantize(frames, bits) + noise


def postprocess(images: jax.Array, bits: int = 5) -> jax.Array:
    """float32 images [..., H, W, 3] around [-0.5, 0.5) -> uint8 frames (bin lower edges)."""
    bins = 2**bits
    x = jnp.floor(bins * (images + 0.5))
    x = jnp.clip(x, 0, bins - 1) * (256 // bins)
    return x.astype(jnp.uint8)


def prepare_obs(obs: jax.Array, key: jax.Array, *, pixels: bool, bits: int = 5) -> jax.Array:
    """The model's view of stored observations: `preprocess` for pixels, float32 states as they are."""
    if pixels:
        return preprocess(obs, key, bits)
    return obs.astype(jnp.float32)
