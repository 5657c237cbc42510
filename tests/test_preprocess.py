import jax
import numpy as np

from planet_jax.model.preprocess import postprocess, preprocess, quantize


def test_quantize_hand_examples():
    frames = np.array([0, 7, 8, 15, 16, 100, 128, 255], np.uint8)
    # 5 bits: floor(v / 8) / 32 - 0.5
    expected = np.array([0, 0, 1, 1, 2, 12, 16, 31], np.float32) / 32 - 0.5
    np.testing.assert_array_equal(np.asarray(quantize(frames, 5)), expected)
    # 8 bits keeps every value: v / 256 - 0.5
    np.testing.assert_array_equal(np.asarray(quantize(frames, 8)), frames.astype(np.float32) / 256 - 0.5)


def test_preprocess_adds_one_bin_of_noise_and_stays_in_range():
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    x = np.asarray(preprocess(frames, jax.random.key(0), 5))
    base = np.asarray(quantize(frames, 5))
    noise = x - base
    assert x.dtype == np.float32 and x.min() >= -0.5 and x.max() < 0.5
    assert noise.min() >= 0 and noise.max() < 1 / 32
    # Uniform over the bin: mean 1/64, std 1/(32 sqrt 12).
    np.testing.assert_allclose(noise.mean(), 1 / 64, rtol=0.02)
    np.testing.assert_allclose(noise.std(), 1 / 32 / np.sqrt(12), rtol=0.02)
    # Different keys, different noise; same key, same values.
    assert not np.array_equal(x, np.asarray(preprocess(frames, jax.random.key(1), 5)))
    np.testing.assert_array_equal(x, np.asarray(preprocess(frames, jax.random.key(0), 5)))


def test_postprocess_inverts_quantisation():
    frames = np.arange(256, dtype=np.uint8)
    x = preprocess(frames, jax.random.key(3), 5)
    back = np.asarray(postprocess(x, 5))
    np.testing.assert_array_equal(back, (frames // 8) * 8)
