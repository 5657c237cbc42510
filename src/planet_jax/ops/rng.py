"""Random numbers for the hot loops: `jax.random`'s exact draws, made faster on CPUs.

On CPUs JAX lowers the Threefry-2x32 hash as a rolled loop (5 iterations of 4 rounds, to
keep compile time down), so every draw becomes a small `while` loop whose iterations
write their [shape] intermediates to memory. The planner draws 0.43 million normals per
CEM iteration inside its rollout, and an update's dequantisation noise is one uniform
per pixel (31 million at B = L = 50). `fast(key)` re-wraps a Threefry key's data under an
implementation whose `random_bits` is the same hash with the 20 rounds unrolled in
`jax.numpy`, which XLA fuses into one elementwise kernel: 9.0 -> 3.1 ns per 32-bit word on
the 2-core EPYC (and 13.4 -> 8.3 ns per normal). Everything else, from bits to floats,
is `jax.random`'s own code, so

    jax.random.normal(fast(key), shape) == jax.random.normal(key, shape)    (bit for bit)

and likewise for `uniform` and `bits` (tests/test_rng.py). `fast` leaves the key alone off
CPUs (GPUs already run an unrolled or fused hash), for other PRNG implementations, and
when `jax_threefry_partitionable` is off (the other counter layout).

  fast(key) -> key         the same draws, the unrolled hash on CPU
  normal(key, shape, dtype) / uniform(key, shape, dtype, minval, maxval)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from planet_jax.ops import backends

# Threefry-2x32's rotation constants, alternating every 4 rounds (Salmon et al., 2011).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds, unrolled: key words k1, k2 [], counters x1, x2 [...] uint32."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    """`jax.random.bits` of a Threefry key's data [2] with the unrolled hash (32-bit words).

    JAX's partitionable layout: element i of the flattened shape hashes the 64-bit counter
    i (as two 32-bit halves) and returns the xor of the two output words.
    """
    size = math.prod(shape)
    if bit_width != 32 or size >= 2**32 or not getattr(jax.config, "jax_threefry_partitionable", True):
        return _THREEFRY.random_bits(key, bit_width, shape)
    low = lax.iota(np.uint32, size).reshape(shape)
    b1, b2 = threefry2x32(key[0], key[1], jnp.zeros(shape, np.uint32), low)
    return b1 ^ b2


# `jax.extend.random` is public since JAX 0.4.2x; should a later JAX drop these hooks, `fast`
# returns keys unchanged and the draws are jax.random's own.
try:
    from jax.extend import random as jex_random

    _THREEFRY = jex_random.threefry_prng_impl
    UNROLLED = jex_random.define_prng_impl(
        key_shape=_THREEFRY.key_shape,
        seed=_THREEFRY.seed,
        split=_THREEFRY.split,
        random_bits=_random_bits,
        fold_in=_THREEFRY.fold_in,
        name="threefry2x32_unrolled",
        tag="fry_u",
    )
except (ImportError, AttributeError, TypeError):  # pragma: no cover - depends on the JAX version
    _THREEFRY = UNROLLED = None


def fast(key: jax.Array) -> jax.Array:
    """The same key with the unrolled hash on CPU (identical draws); any other key unchanged."""
    if UNROLLED is None or backends.backend() != "cpu" or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if str(jax.random.key_impl(key)) != _THREEFRY.name:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED)


def normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """`jax.random.normal(key, shape, dtype)`, bit for bit, faster on CPU."""
    return jax.random.normal(fast(key), shape, dtype)


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32, minval=0.0, maxval=1.0) -> jax.Array:
    """`jax.random.uniform(key, shape, dtype, minval, maxval)`, bit for bit, faster on CPU."""
    return jax.random.uniform(fast(key), shape, dtype, minval, maxval)
