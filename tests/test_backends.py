"""The one platform switch: every backend-dependent setting decided in planet_jax.ops.backends,
resolved once per program, recorded, and computing what the `auto` config computes."""

from unittest import mock

import jax
import numpy as np

from helpers import tiny_config
from planet_jax import config as C
from planet_jax.agent.planner import plan
from planet_jax.model import rssm
from planet_jax.model.networks import init_params
from planet_jax.ops import backends
from planet_jax.ops import rng as prng


def test_choices_follow_each_backends_rules():
    cfg = tiny_config()
    assert backends.choices(cfg, "cpu") == dict(
        backend="cpu", matmul_precision="float32", prng_impl="threefry2x32_unrolled", conv_impl="matmul",
        agent_axis="map", env_axis="map", reward_pass="per_step", rollout_unroll=1,
    )  # fmt: skip
    gpu = backends.choices(cfg, "gpu")
    assert (gpu["conv_impl"], gpu["agent_axis"], gpu["env_axis"], gpu["reward_pass"]) == (
        "matmul",
        "vmap",
        "vmap",
        "after",
    )
    assert gpu["rollout_unroll"] == cfg.planner.horizon and gpu["matmul_precision"] == "tensorfloat32"
    assert gpu["prng_impl"] == "threefry2x32"
    assert backends.choices(cfg, "tpu")["conv_impl"] == "xla"
    # Explicit settings are kept on every backend.
    fixed = C.replace(cfg, env_axis="vmap", reward_pass="after", rollout_unroll=3, conv_impl="xla")
    assert {
        k: backends.choices(fixed, "cpu")[k] for k in ("env_axis", "reward_pass", "rollout_unroll", "conv_impl")
    } == dict(env_axis="vmap", reward_pass="after", rollout_unroll=3, conv_impl="xla")
    # The default backend is read at each call (tests trace for a GPU by patching it).
    with mock.patch("jax.default_backend", return_value="gpu"):
        assert backends.choices(cfg)["env_axis"] == "vmap"


def test_a_resolved_config_has_no_auto_left_and_plans_the_same_action():
    cfg = tiny_config(horizon=4)
    resolved = backends.resolve(cfg, "gpu")
    assert all(v != "auto" for group in C.to_dict(resolved).values() for v in group.values())
    assert resolved.planner.rollout_unroll == 4 and C.validate(resolved) == resolved
    # On this backend, the resolved config runs the program the `auto` one runs.
    here = backends.resolve(cfg)
    params = init_params(prng.key(0), cfg)
    belief = jax.tree.map(lambda x: x + 0.3, rssm.initial((), cfg))
    np.testing.assert_array_equal(
        np.asarray(plan(params, belief, prng.key(1), cfg=here)),
        np.asarray(plan(params, belief, prng.key(1), cfg=cfg)),
    )


def test_the_model_code_asks_no_one_but_the_backends_module_for_the_backend():
    import pathlib

    src = pathlib.Path(backends.__file__).parent
    askers = sorted(
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if "default_backend()" in p.read_text() and p.name != "backends.py"
    )
    assert askers == [], askers
