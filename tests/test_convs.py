"""Every convolution form equals Flax's Conv / ConvTranspose, forward and backward."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planet_jax.model.networks import ConvDecoder, ConvEncoder
from planet_jax.ops import convs
from planet_jax.ops.backends import conv_impl as resolve_impl

# (H, C_in, C_out, k) of the paper's layers, plus odd shapes.
CONV_LAYERS = [(64, 3, 32, 4), (31, 32, 64, 4), (14, 64, 128, 4), (6, 128, 256, 4), (9, 5, 7, 3)]
DECONV_LAYERS = [(1, 64, 16, 5), (5, 16, 8, 5), (13, 8, 6, 6), (30, 6, 3, 6), (4, 3, 5, 3), (3, 2, 2, 4)]


def _inputs(n, h, c, f, k, seed=0):
    kx, kk = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (n, h, h, c)), jax.random.normal(kk, (k, k, c, f)) / np.sqrt(k * k * c)


def _flax_conv(x, kernel):
    f = kernel.shape[-1]
    mod = nn.Conv(f, kernel.shape[:2], strides=(2, 2), padding="VALID")
    return mod.apply({"params": {"kernel": kernel, "bias": jnp.zeros(f)}}, x)


def _flax_deconv(x, kernel):
    f = kernel.shape[-1]
    mod = nn.ConvTranspose(f, kernel.shape[:2], strides=(2, 2), padding="VALID")
    return mod.apply({"params": {"kernel": kernel, "bias": jnp.zeros(f)}}, x)


def _assert_close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("layer", CONV_LAYERS)
@pytest.mark.parametrize("form", ["conv_patches", "conv_s2d", "conv_s2d_patches", "conv_xla", "matmul"])
def test_conv_forms_equal_flax(layer, form):
    h, c, f, k = layer
    if form in ("conv_s2d", "conv_s2d_patches") and k % 2:
        pytest.skip("space-to-depth needs k divisible by the stride")
    x, kernel = _inputs(2, *layer)
    _assert_close(convs.conv(x, kernel, 2, form), _flax_conv(x, kernel))


@pytest.mark.parametrize("layer", DECONV_LAYERS)
@pytest.mark.parametrize("form", ["deconv_overlap", "deconv_subpixel", "deconv_subpixel_xla", "deconv_xla", "matmul"])
def test_deconv_forms_equal_flax_conv_transpose(layer, form):
    x, kernel = _inputs(2, *layer)
    _assert_close(convs.deconv(x, kernel, 2, form), _flax_deconv(x, kernel))


@pytest.mark.parametrize(
    "kind, layer", [("conv", layer) for layer in CONV_LAYERS] + [("deconv", layer) for layer in DECONV_LAYERS]
)
@pytest.mark.parametrize("wide_window", [convs.WIDE_WINDOW, 1])
def test_cpu_plan_gradients_equal_flax(kind, layer, wide_window, monkeypatch):
    # Covers the hand-written backward passes (conv_cpu, deconv_cpu with either forward
    # form, kernels that are and are not multiples of the stride) and the fallbacks, with
    # patch matrices concatenated or taken window by window (threshold 1: every layer).
    monkeypatch.setattr(convs, "WIDE_WINDOW", wide_window)
    x, kernel = _inputs(2, *layer, seed=1)
    ours = convs.conv if kind == "conv" else convs.deconv
    ref = _flax_conv if kind == "conv" else _flax_deconv
    target = jax.random.normal(jax.random.key(2), ref(x, kernel).shape)
    loss = lambda fn: lambda x, k: jnp.sum((fn(x, k) - target) ** 2)  # noqa: E731
    g_ours = jax.grad(loss(lambda x, k: ours(x, k, 2, "matmul")), argnums=(0, 1))(x, kernel)
    g_ref = jax.grad(loss(ref), argnums=(0, 1))(x, kernel)
    for a, b in zip(g_ours, g_ref):
        _assert_close(a, b)


@pytest.mark.parametrize("layer", [(13, 8, 6, 6), (5, 16, 8, 5), (4, 3, 5, 3)])
def test_phase_windows_are_the_transposed_convolutions_input_gradient(layer):
    # G W is the VJP of the transposed convolution with respect to x, and G^T x its
    # kernel gradient in the phase layout: checked against jax.vjp of lax.conv_transpose.
    h, c, f, k = layer
    x, kernel = _inputs(3, *layer, seed=3)
    dy = jax.random.normal(jax.random.key(4), convs.deconv_xla(x, kernel, 2).shape)
    g = convs.phase_windows(dy, h, h, k, 2)
    assert g.shape[0] == 3 * h * h
    dx_ref, dk_ref = jax.vjp(lambda x_, k_: convs.deconv_xla(x_, k_, 2), x, kernel)[1](dy)
    _assert_close((g @ convs._phase_weights(kernel, 2)).reshape(x.shape), dx_ref)
    dk = jax.vjp(lambda k_: convs._phase_weights(k_, 2), kernel)[1](g.T @ x.reshape(-1, c))[0]
    _assert_close(dk, dk_ref)


@pytest.mark.parametrize("widths", [(7, 3), (3, 7), (5, 5)])
def test_gram_is_a_transposed_times_b_in_either_orientation(widths):
    # Under jit too: the optimization barrier must not change the product or its layout.
    a = jax.random.normal(jax.random.key(5), (300, widths[0]))
    b = jax.random.normal(jax.random.key(6), (300, widths[1]))
    want = np.asarray(a, np.float64).T @ np.asarray(b, np.float64)
    for fn in (convs.gram, jax.jit(convs.gram)):
        got = fn(a, b)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_mixed_uses_every_form_and_stays_exact():
    # A mixture whose three directions are all different forms.
    x, kernel = _inputs(2, 13, 8, 6, 6)
    fn = convs.mixed("deconv_subpixel_xla", "deconv_overlap", "deconv_subpixel", 2)
    _assert_close(fn(x, kernel), _flax_deconv(x, kernel))
    g1 = jax.grad(lambda x, k: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))(x, kernel)
    g2 = jax.grad(lambda x, k: jnp.sum(jnp.sin(_flax_deconv(x, k))), argnums=(0, 1))(x, kernel)
    for a, b in zip(g1, g2):
        _assert_close(a, b)


def test_encoder_and_decoder_match_between_implementations():
    x = jax.random.uniform(jax.random.key(0), (3, 64, 64, 3)) - 0.5
    feats = jax.random.normal(jax.random.key(1), (3, 20))
    enc_cpu, enc_xla = ConvEncoder(4, "matmul"), ConvEncoder(4, "xla")
    dec_cpu, dec_xla = ConvDecoder(4, "matmul"), ConvDecoder(4, "xla")
    pe = jax.jit(enc_cpu.init)(jax.random.key(2), x)  # (compiled: op by op, the matmul forms are slow to run)
    pd = jax.jit(dec_cpu.init)(jax.random.key(3), feats)
    e = jax.jit(enc_cpu.apply)(pe, x)
    assert e.shape == (3, 128)
    _assert_close(e, jax.jit(enc_xla.apply)(pe, x))
    img = jax.jit(dec_cpu.apply)(pd, feats)
    assert img.shape == (3, 64, 64, 3)
    _assert_close(img, jax.jit(dec_xla.apply)(pd, feats))


def test_auto_picks_the_matmul_forms_except_on_tpu():
    # Measured: on an H200 they ran the paper update 3.7x faster than cuDNN's convolutions.
    assert [resolve_impl("auto", b) for b in ("cpu", "gpu", "tpu")] == ["matmul", "matmul", "xla"]
    assert resolve_impl("xla", "cpu") == "xla" and resolve_impl("matmul", "tpu") == "matmul"
