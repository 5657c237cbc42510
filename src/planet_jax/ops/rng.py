"""Random numbers for the hot loops: `jax.random`'s exact draws, made faster on CPUs.

On CPUs JAX lowers the Threefry-2x32 hash as a rolled loop (5 iterations of 4 rounds, to
keep compile time down), so every draw becomes a small `while` loop whose iterations
write their [shape] intermediates to memory. The planner draws 0.43 million normals per
CEM iteration inside its rollout, and an update's dequantisation noise is one uniform
per pixel (31 million at B = L = 50). `key(seed)` makes keys under an implementation
whose `random_bits` is the same hash with the 20 rounds unrolled in
`jax.numpy`, which XLA fuses into one elementwise kernel, about 4x faster per 32-bit word
on a CPU (experiments/results/cpu-epyc-rng). Everything else, from bits to floats,
is `jax.random`'s own code, so

    jax.random.normal(key(seed), shape) == jax.random.normal(jax.random.key(seed), shape)

bit for bit, and likewise for `uniform` and `bits` (tests/test_rng.py). The model code calls
`jax.random` directly; the implementation is chosen where a key is made, by the one platform
switch (`backends.prng_impl`): the unrolled hash on CPU, JAX's own elsewhere (GPUs already
run an unrolled or fused hash). 32-bit draws with `jax_threefry_partitionable` off (the
other counter layout) fall back to JAX's hash.

  key(seed) -> key      a new key (`programs.seed_keys`, `Agent`, `bench`, tests)
  wrap(data) -> key     a restored key (`checkpoint`)
  fast(key) -> key      a key made by `jax.random.key` elsewhere, re-wrapped the same way
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


def _impl(name: str):
    return UNROLLED if name == "threefry2x32_unrolled" and UNROLLED is not None else _THREEFRY


def key(seed: int | jax.Array) -> jax.Array:
    """`jax.random.key(seed)` with this backend's implementation (`backends.prng_impl`): on CPU
    the unrolled hash. Every key split or folded from it keeps it, and draws what
    `jax.random.key(seed)` would."""
    if _THREEFRY is None:  # pragma: no cover - depends on the JAX version
        return jax.random.key(seed)
    return jax.random.key(seed, impl=_impl(backends.prng_impl()))


def wrap(data: jax.Array) -> jax.Array:
    """`jax.random.wrap_key_data(data)` with this backend's implementation: a restored key."""
    if _THREEFRY is None:  # pragma: no cover - depends on the JAX version
        return jax.random.wrap_key_data(data)
    return jax.random.wrap_key_data(data, impl=_impl(backends.prng_impl()))


def fast(key: jax.Array) -> jax.Array:
    """A Threefry key made elsewhere (`jax.random.key`), re-wrapped as `key` would have made it
    on this backend (identical draws); any other key unchanged."""
    if UNROLLED is None or backends.prng_impl() != "threefry2x32_unrolled":
        return key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or str(jax.random.key_impl(key)) != _THREEFRY.name:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED)
