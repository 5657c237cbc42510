"""planet_jax.ops.rng: the unrolled Threefry hash draws exactly what jax.random draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planet_jax.ops import rng

SHAPES = [(), (1,), (7,), (1000, 30), (3, 5, 11), (2, 0, 4)]


def _threefry_reference(k1: int, k2: int, x1: int, x2: int) -> tuple[int, int]:
    """Threefry-2x32, 20 rounds, in plain Python integers (Salmon et al., 2011)."""
    mask = 0xFFFFFFFF
    ks = [k1, k2, k1 ^ k2 ^ 0x1BD11BDA]
    rotations = [13, 15, 26, 6, 17, 29, 16, 24]
    x = [(x1 + ks[0]) & mask, (x2 + ks[1]) & mask]
    for r in range(20):
        rot = rotations[r % 8]
        x[0] = (x[0] + x[1]) & mask
        x[1] = ((x[1] << rot) | (x[1] >> (32 - rot))) & mask
        x[1] ^= x[0]
        if r % 4 == 3:
            i = r // 4 + 1
            x[0] = (x[0] + ks[i % 3]) & mask
            x[1] = (x[1] + ks[(i + 1) % 3] + i) & mask
    return x[0], x[1]


def test_unrolled_hash_matches_a_plain_integer_reference_and_the_published_vector():
    # Random123's known-answer vectors for threefry2x32_20.
    assert _threefry_reference(0, 0, 0, 0) == (0x6B200159, 0x99BA4EFE)
    assert _threefry_reference(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) == (0x1CB996FC, 0xBB002BE7)
    cases = [
        (0, 0, 0, 0),
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3),
    ]
    for k1, k2, x1, x2 in cases:
        u32 = lambda v: jnp.asarray(v, jnp.uint32)  # noqa: E731
        got = rng.threefry2x32(u32(k1), u32(k2), u32([x1]), u32([x2]))
        assert (int(got[0][0]), int(got[1][0])) == _threefry_reference(k1, k2, x1, x2)


@pytest.mark.parametrize("shape", SHAPES)
def test_normal_uniform_and_bits_equal_jax_random_bit_for_bit(shape):
    for seed in (0, 1, 2**31 + 5):
        key, ours = jax.random.key(seed), rng.key(seed)
        normal = jax.jit(jax.random.normal, static_argnums=1)
        np.testing.assert_array_equal(normal(ours, shape), jax.random.normal(key, shape))
        np.testing.assert_array_equal(
            jax.random.uniform(ours, shape, jnp.float32, -0.25, 0.5),
            jax.random.uniform(key, shape, jnp.float32, -0.25, 0.5),
        )
        np.testing.assert_array_equal(jax.random.bits(ours, shape), jax.random.bits(key, shape))
        np.testing.assert_array_equal(jax.random.bits(rng.fast(key), shape), jax.random.bits(key, shape))


def test_other_dtypes_bit_widths_and_split_keys_are_unchanged():
    key = jax.random.fold_in(jax.random.key(4), 9)
    ours = jax.random.fold_in(rng.key(4), 9)
    np.testing.assert_array_equal(
        jax.random.normal(ours, (64,), jnp.bfloat16), jax.random.normal(key, (64,), jnp.bfloat16)
    )
    np.testing.assert_array_equal(
        jax.random.normal(ours, (3, 4), jnp.float16), jax.random.normal(key, (3, 4), jnp.float16)
    )
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint64) if jax.config.jax_enable_x64 else (jnp.uint8, jnp.uint16):
        np.testing.assert_array_equal(jax.random.bits(rng.fast(key), (9,), dtype), jax.random.bits(key, (9,), dtype))
    # Keys derived from a fast key are the same keys.
    fast = rng.fast(key)
    for a, b in zip(jax.random.split(fast, 3), jax.random.split(key, 3)):
        np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
        np.testing.assert_array_equal(jax.random.normal(a, (5,)), jax.random.normal(b, (5,)))


def test_vmapped_keys_draw_what_each_key_draws():
    keys = jax.random.split(jax.random.key(11), 4)
    got = jax.vmap(lambda k: jax.random.normal(k, (6, 3)))(jax.random.split(rng.key(11), 4))
    for k, row in zip(keys, got):
        np.testing.assert_array_equal(row, jax.random.normal(k, (6, 3)))


def test_other_keys_are_left_alone():
    legacy = jax.random.PRNGKey(0)
    assert rng.fast(legacy) is legacy
    rbg = jax.random.key(0, impl="rbg")
    assert rng.fast(rbg) is rbg


@pytest.mark.compiled_text
def test_on_cpu_the_draw_has_no_loop():
    """The point of the module: JAX's CPU lowering of the hash is a while loop, ours is not."""
    if jax.default_backend() != "cpu":
        pytest.skip("the rolled lowering is JAX's CPU lowering")
    draw = jax.jit(lambda k: jax.random.normal(k, (100, 30)))
    ours = draw.lower(rng.key(0)).as_text()
    theirs = draw.lower(jax.random.key(0)).as_text()
    assert "stablehlo.while" in theirs
    assert "stablehlo.while" not in ours


def test_init_params_equals_flax_init_with_jax_random_bit_for_bit():
    # `networks.init_params` is compiled and draws with `rng.key`'s hash (`rng.fast` re-wraps
    # any other Threefry key). The reference is the same function run op by op with
    # `rng.fast` as the identity: Flax's own `init` drawing from jax.random's own Threefry.
    from unittest import mock

    from helpers import tiny_config
    from planet_jax.model.networks import init_params

    cfg = tiny_config()  # (state observations: op by op, a pixel model takes 40 s here)
    got = init_params(rng.key(5), cfg)
    assert all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(init_params(jax.random.key(5), cfg)))
    )
    with mock.patch.object(rng, "fast", lambda k: k):
        want = init_params.__wrapped__(jax.random.key(5), cfg)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


def test_keys_are_made_with_the_backends_implementation_and_restored_with_it():
    from helpers import tiny_config
    from planet_jax.ops import backends

    unrolled = backends.prng_impl() == "threefry2x32_unrolled"
    assert unrolled == (jax.default_backend() == "cpu")
    key = rng.key(3)
    assert (jax.random.key_impl(key) == jax.random.key_impl(jax.random.key(3, impl=rng.UNROLLED))) == unrolled
    # Split, folded and restored keys keep it; the restored key is the same key.
    for derived in (jax.random.split(key)[1], jax.random.fold_in(key, 2), rng.wrap(jax.random.key_data(key))):
        assert jax.random.key_impl(derived) == jax.random.key_impl(key)
    np.testing.assert_array_equal(jax.random.key_data(rng.wrap(jax.random.key_data(key))), jax.random.key_data(key))
    assert backends.choices(tiny_config())["prng_impl"] == backends.prng_impl()
