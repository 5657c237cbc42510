"""Compiler options per backend: XLA's own matrix products on CPUs, the same function."""

import jax
import jax.numpy as jnp
import numpy as np

from helpers import random_batch, tiny_config
from planet_jax import compiler, rssm
from planet_jax.networks import init_params
from planet_jax.planner import act, act_jit
from planet_jax.state import create_train_state
from planet_jax.update import scan_updates, update

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
    return belief, jnp.full((n, cfg.action_size), 0.2), jnp.asarray(obs), jax.random.key(1)


def test_act_without_library_dots_plans_what_the_default_compilation_plans():
    cfg = tiny_config()
    params = init_params(jax.random.key(0), cfg)
    args = (params, *_act_inputs(cfg))
    plain = jax.jit(act, static_argnames=("cfg", "explore"))
    # The default compilation uses YNNPACK for these products; act_jit does not.
    assert YNN in plain.lower(*args, cfg=cfg, explore=False).compile().as_text()
    assert YNN not in act_jit.lower(*args, cfg=cfg, explore=False).compile().as_text()
    want, want_belief = plain(*args, cfg=cfg, explore=False)
    got, got_belief = act_jit(*args, cfg=cfg, explore=False)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(got_belief.deter, want_belief.deter, atol=2e-5)


def test_update_without_library_dots_equals_the_default_compilation():
    cfg = tiny_config()
    state = create_train_state(jax.random.key(0), cfg=cfg)
    batches = jax.tree.map(jnp.asarray, random_batch(cfg, 4, 10, lead=(2,)))
    plain = jax.jit(scan_updates, static_argnames="cfg")
    assert YNN in plain.lower(state, batches, cfg=cfg).compile().as_text()
    assert YNN not in update.lower(state, batches, cfg=cfg).compile().as_text()
    want_state, want = plain(state, batches, cfg=cfg)
    got_state, got = update(create_train_state(jax.random.key(0), cfg=cfg), batches, cfg=cfg)  # (donated)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(got_state.params), jax.tree.leaves(want_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
