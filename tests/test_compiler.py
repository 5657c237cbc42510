"""Compiler options per backend: the planner with XLA's own matrix products on CPUs, the same function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_batch, tiny_config
from planet_jax.agent.planner import act, act_jit
from planet_jax.model import rssm
from planet_jax.model.networks import init_params
from planet_jax.ops import compiler
from planet_jax.ops import rng as prng

YNN = "__ynn_fusion"


def test_options_per_backend_and_xla_flags_win(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert compiler.options("cpu") == {compiler.YNN_FUSION: ""}
    assert compiler.options("gpu") == compiler.options("tpu") == {}
    monkeypatch.setenv("XLA_FLAGS", f"--{compiler.YNN_FUSION}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")
    assert compiler.options("cpu") == {}


def _act_inputs(cfg, n=2):
    obs = np.random.default_rng(0).normal(size=(n, *cfg.obs_shape)).astype(np.float32)
    belief = jax.tree.map(lambda x: x + 0.3, rssm.initial((n,), cfg))
    return belief, jnp.full((n, cfg.action_size), 0.2), jnp.asarray(obs), prng.key(1)


@pytest.mark.compiled_text
def test_act_without_library_dots_plans_what_the_default_compilation_plans():
    cfg = tiny_config()
    params = init_params(prng.key(0), cfg)
    args = (params, *_act_inputs(cfg))
    plain = jax.jit(act, static_argnames=("cfg", "explore"))
    # The default compilation uses YNNPACK for these products; act_jit does not.
    assert YNN in plain.lower(*args, cfg=cfg, explore=False).compile().as_text()
    assert YNN not in act_jit.lower(*args, cfg=cfg, explore=False).compile().as_text()
    want, want_belief = plain(*args, cfg=cfg, explore=False)
    got, got_belief = act_jit(*args, cfg=cfg, explore=False)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(got_belief.deter, want_belief.deter, atol=2e-5)


@pytest.mark.compiled_text
def test_training_acts_without_library_dots_and_updates_with_the_defaults():
    from planet_jax.agent import programs

    cfg = tiny_config(num_seeds=2)
    compiled = programs.compiled(cfg)
    state = programs.initializer(cfg)()
    belief, prev, obs, _ = _act_inputs(cfg, n=1)
    stack = lambda x: jnp.stack([x, x])  # noqa: E731 (two agents, one environment each)
    acting = (state.params, *jax.tree.map(stack, (belief, prev, obs)), jax.random.split(prng.key(1), 2))
    noise = state.hyper["exploration_noise"]
    assert YNN not in compiled.act_explore.lower(*acting, noise).compile().as_text()
    assert YNN not in compiled.act_test.lower(*acting, noise).compile().as_text()
    batches = jax.tree.map(lambda x: jnp.asarray(stack(x)), random_batch(cfg, 4, 10, lead=(1,)))
    assert YNN in compiled.update.lower(state, batches).compile().as_text()


@pytest.mark.compiled_text
def test_matmul_precision_reaches_the_update_and_the_planner():
    """`matmul_precision=float32` puts HIGHEST on every product of the loss and of `act`;
    `default` leaves JAX's default (none named), and the record says what each resolves to."""
    from planet_jax import config as C
    from planet_jax.model.losses import world_model_loss

    def texts(cfg):
        params = init_params(prng.key(0), cfg)
        batch = random_batch(cfg, 2, 4)
        loss = jax.jit(world_model_loss, static_argnames="cfg").lower(params, batch, prng.key(1), cfg=cfg)
        belief = rssm.initial((1,), cfg)
        acting = jax.jit(act, static_argnames=("cfg", "explore")).lower(
            params, belief, jnp.zeros((1, cfg.action_size)), jnp.zeros((1, *cfg.obs_shape)), prng.key(2),
            cfg=cfg, explore=False,
        )  # fmt: skip
        return loss.as_text(), acting.as_text()

    base = tiny_config()
    for text in texts(base):
        assert "dot_general" in text and "HIGHEST" not in text
    for text in texts(C.replace(base, matmul_precision="float32")):
        dots = text.count("stablehlo.dot_general")
        assert dots > 0 and text.count("precision = [HIGHEST, HIGHEST]") == dots, (dots, text.count("HIGHEST"))
    assert compiler.resolved_precision(base, "cpu") == "float32"
    assert compiler.resolved_precision(base, "gpu") == "tensorfloat32"
    assert compiler.resolved_precision(C.replace(base, matmul_precision="float32"), "gpu") == "float32"
