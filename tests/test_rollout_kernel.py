"""The experimental fused Pallas rollout kernel against `rssm.imagine`, the planner with it, and its GPU lowering.

On CPU the kernel runs in Pallas's interpreter; the lowering tests build the Triton kernel
for CUDA without a GPU (what can be checked here: shapes, dtypes, every primitive lowers).
"""

import contextlib
import io
import re
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import pallas as pl

from helpers import tiny_config
from planet_jax import config as C
from planet_jax.agent import planner
from planet_jax.experimental import rollout_kernel as kernels
from planet_jax.model import rssm
from planet_jax.model.networks import init_params
from planet_jax.ops import rng as prng

# The comparisons run with float32 products (`highest`): by default a GPU multiplies in
# TF32 (10-bit mantissas), in XLA and in the kernel alike, and elites chosen from such
# scores may differ. On a GPU the two still sum in different orders.
ATOL = 2e-6 if jax.default_backend() == "cpu" else 1e-4


@pytest.fixture
def float32_products():
    with jax.default_matmul_precision("highest"):
        yield


def _start(cfg, seed=1):
    k1, k2 = jax.random.split(prng.key(seed))
    return rssm.State(
        jax.random.normal(k1, (cfg.deter_size,)),
        jax.random.normal(k2, (cfg.stoch_size,)),
        jnp.zeros(cfg.stoch_size),
        jnp.ones(cfg.stoch_size),
    )


@pytest.mark.usefixtures("float32_products")
@pytest.mark.parametrize(
    "sizes, num, block, rows",
    [
        (dict(), 50, 16, 32),  # the debug sizes: deter 32, stoch 8 (padded to 16), hidden 32
        (dict(), 64, 32, 16),
        # deter 72 -> 96 (column blocks of 64 and 32), hidden 40 -> 64: the K loops differ
        (dict(deter_size=72, stoch_size=5, hidden_size=40), 20, 16, 16),
        (dict(deter_size=40, hidden_size=100), 24, 16, 32),  # deter 40 -> 64, hidden 100 -> 128
    ],
)
def test_rollout_equals_imagine(sizes, num, block, rows):
    cfg = tiny_config(horizon=5, **sizes)
    cell = init_params(prng.key(0), cfg)["cell"]
    start = _start(cfg)
    actions = jax.random.uniform(prng.key(2), (num, 5, cfg.action_size), minval=-1, maxval=1)
    key = prng.key(3)
    expected = rssm.imagine(
        cell, jax.tree.map(lambda x: jnp.broadcast_to(x, (num, *x.shape)), start), actions, key, cfg=cfg
    )
    eps = kernels.prior_noise(key, num, 5, cfg.stoch_size)
    rollout = jax.jit(kernels.rollout, static_argnames=("min_std", "block", "rows"))
    deter, stoch = rollout(
        cell, start.deter, start.stoch, actions, eps, min_std=cfg.model.min_std, block=block, rows=rows
    )
    assert deter.shape == (5, num, cfg.deter_size) and stoch.shape == (5, num, cfg.stoch_size)
    np.testing.assert_allclose(np.asarray(deter), np.swapaxes(np.asarray(expected.deter), 0, 1), atol=ATOL)
    np.testing.assert_allclose(np.asarray(stoch), np.swapaxes(np.asarray(expected.stoch), 0, 1), atol=ATOL)
    # The states move: a kernel that copied its start would fail the comparison above only weakly.
    assert float(jnp.abs(deter[-1] - start.deter).min()) > 0


@pytest.mark.usefixtures("float32_products")
def test_rollout_takes_the_cell_padded_once():
    cfg = tiny_config(horizon=3, deter_size=20)
    cell = init_params(prng.key(0), cfg)["cell"]
    start = _start(cfg)
    actions = jax.random.uniform(prng.key(2), (16, 3, cfg.action_size), minval=-1, maxval=1)
    eps = kernels.prior_noise(prng.key(3), 16, 3, cfg.stoch_size)
    padded = kernels.pad_cell(cell, stoch=cfg.stoch_size, action=cfg.action_size)
    # Padded to 32 deterministic units: the padding is zeros, the real block the weights.
    w_h = padded.weights[5]
    assert w_h.shape == (32, 3 * 32)
    h_rows = cell["gru"]["gates"]["kernel"][cfg.model.hidden_size :]  # the reset gate's h rows
    np.testing.assert_array_equal(np.asarray(w_h[: cfg.deter_size, : cfg.deter_size]), h_rows[:, : cfg.deter_size])
    assert float(jnp.abs(w_h[cfg.deter_size :]).max()) == 0.0
    for a, b in zip(
        kernels.rollout(padded, start.deter, start.stoch, actions, eps, min_std=0.1),
        kernels.rollout(cell, start.deter, start.stoch, actions, eps, min_std=0.1),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = kernels.pad_cell(cell, stoch=cfg.stoch_size, action=cfg.action_size + 1)
    with pytest.raises(ValueError, match="sizes"):
        kernels.rollout(other, start.deter, start.stoch, actions, eps, min_std=0.1)


def test_rollout_rejects_what_it_cannot_run():
    cfg = tiny_config()
    cell = init_params(prng.key(0), cfg)["cell"]
    actions = jnp.zeros((16, 3, cfg.action_size))
    eps = jnp.zeros((3, 16, cfg.stoch_size))
    start = (jnp.zeros(cfg.deter_size), jnp.zeros(cfg.stoch_size))
    with pytest.raises(ValueError, match="block must be a power of two"):
        kernels.rollout(cell, *start, actions, eps, min_std=0.1, block=24)
    with pytest.raises(ValueError, match="rows must be 16 or 32"):
        kernels.rollout(cell, *start, actions, eps, min_std=0.1, rows=64)
    ssm = init_params(prng.key(0), C.replace(cfg, variant="ssm"))["cell"]
    with pytest.raises(ValueError, match="rssm variant"):
        kernels.rollout(ssm, jnp.zeros(0), jnp.zeros(cfg.stoch_size), actions, eps, min_std=0.1)


@pytest.mark.usefixtures("float32_products")
def test_planner_with_the_kernel_scores_and_plans_as_with_xla():
    cfg = tiny_config(horizon=4, reward_pass="after")
    params = init_params(prng.key(0), cfg)
    start = _start(cfg)
    actions = jax.random.uniform(prng.key(2), (40, 4, cfg.action_size), minval=-1, maxval=1)
    key = prng.key(3)
    np.testing.assert_allclose(
        np.asarray(kernels.score_sequences(params, start, actions, key, cfg=cfg, launch=kernels.Launch(block=32))),
        np.asarray(planner.score_sequences(params, start, actions, key, cfg=cfg)),
        atol=10 * ATOL,
    )
    np.testing.assert_allclose(
        np.asarray(kernels.plan(params, start, key, cfg=cfg)),
        np.asarray(planner.plan(params, start, key, cfg=cfg)),
        atol=10 * ATOL,
    )


def test_batched_act_with_the_kernel_equals_per_environment_plans():
    # Moved from tests/test_planner.py's test_batched_act_equals_per_environment_calls, where
    # the kernel was a planner setting: vmap over environments becomes a grid axis of the
    # kernel (run here by Pallas's interpreter).
    cfg = tiny_config(obs="pixels", env_axis="vmap")
    params = init_params(prng.key(0), cfg)
    n = 3
    obs = np.random.default_rng(0).integers(0, 256, (n, *cfg.obs_shape), dtype=np.uint8)
    prev = jax.random.uniform(prng.key(1), (n, cfg.action_size), minval=-1, maxval=1)
    belief = rssm.initial((n,), cfg)
    key = prng.key(2)
    actions, new_belief = kernels.act(params, belief, prev, obs, key, cfg=cfg, explore=False)
    assert actions.shape == (n, cfg.action_size) and float(jnp.abs(actions).max()) <= 1.0
    # The same computation environment by environment, with the keys act derives.
    k_obs, k_plan, _ = jax.random.split(key, 3)
    beliefs = planner.observe_step(params, belief, prev, obs, k_obs, cfg=cfg)
    keys = jax.random.split(k_plan, n)
    for i in range(n):
        single = jax.tree.map(lambda x, i=i: x[i], beliefs)
        np.testing.assert_allclose(
            np.asarray(kernels.plan(params, single, keys[i], cfg=cfg)), np.asarray(actions[i]), atol=1e-5
        )
        np.testing.assert_allclose(np.asarray(new_belief.deter[i]), np.asarray(single.deter), atol=1e-6)


def test_kernel_settings_are_checked():
    cfg = tiny_config()
    with pytest.raises(C.ConfigError, match="block"):
        kernels.Launch(block=48)
    with pytest.raises(C.ConfigError, match="rows"):
        kernels.Launch(rows=64)
    ssm = C.replace(cfg, variant="ssm")
    with pytest.raises(C.ConfigError, match="rssm variant only"):
        kernels.plan(init_params(prng.key(0), ssm), _start(ssm), prng.key(0), cfg=ssm)
    params = init_params(prng.key(0), cfg)
    actions = jnp.zeros((16, cfg.planner.horizon, cfg.action_size))
    with mock.patch("jax.default_backend", return_value="tpu"), pytest.raises(C.ConfigError, match="GPUs"):
        kernels.score_sequences(params, _start(cfg), actions, prng.key(0), cfg=cfg)


def test_run_directories_from_before_the_move_still_load():
    # config.json of a run made when the kernel was a planner setting: the neutral value
    # loads (and is not written back), the kernel itself is refused with the reason.
    cfg = tiny_config()
    old = C.to_dict(cfg)
    old["planner"].update(rollout_kernel="xla", kernel_block=16, kernel_warps=8, kernel_stages=2, kernel_rows=16)
    assert C.from_dict(old) == cfg and "rollout_kernel" not in C.to_dict(C.from_dict(old))["planner"]
    old["planner"]["rollout_kernel"] = "pallas"
    with pytest.raises(C.ConfigError, match="experimental.rollout_kernel"):
        C.from_dict(old)
    with pytest.raises(C.ConfigError, match="unknown config field 'rollout_kernel'"):
        C.replace(cfg, rollout_kernel="pallas")


def _cuda_text(fn, *args):
    """The StableHLO that `fn` lowers to for CUDA, traced as on a GPU (auto settings resolve for gpu)."""
    with mock.patch("jax.default_backend", return_value="gpu"):
        return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


@pytest.mark.compiled_text
def test_batched_act_with_the_kernel_lowers_to_one_triton_call_for_cuda():
    # The GPU defaults (vmap over environments, reward after the rollout) at pixel debug sizes.
    cfg = tiny_config(obs="pixels")
    params = init_params(prng.key(0), cfg)
    n = 3
    obs = jnp.zeros((n, *cfg.obs_shape), jnp.uint8)
    prev = jnp.zeros((n, cfg.action_size))

    def fn(params, belief, prev, obs, key):
        return kernels.act(params, belief, prev, obs, key, cfg=cfg, explore=True)

    text = _cuda_text(fn, params, rssm.initial((n,), cfg), prev, obs, prng.key(0))
    assert text.count("xla.gpu.triton") == 1, "one kernel call inside the CEM loop"
    assert 'name = "planet_rollout"' in text
    # vmap over 3 environments becomes a second grid axis, not three calls.
    assert "grid_y = 3" in text


@pytest.mark.compiled_text
def test_paper_size_rollout_lowers_for_cuda():
    cfg = C.replace(C.preset("paper"), obs="state")  # the same cell; a pixel model takes 26 s to initialise here
    cell = init_params(prng.key(0), cfg)["cell"]
    p = cfg.planner
    start = _start(cfg)
    actions = jnp.zeros((p.num_candidates, p.horizon, cfg.action_size))

    def fn(cell, deter, stoch, actions, key):
        eps = kernels.prior_noise(key, p.num_candidates, p.horizon, cfg.stoch_size)
        return kernels.rollout(
            cell, deter, stoch, actions, eps, min_std=cfg.model.min_std, block=kernels.Launch().block
        )

    text = _cuda_text(fn, cell, start.deter, start.stoch, actions, prng.key(0))
    assert text.count("xla.gpu.triton") == 1
    assert f"grid_x = {-(-p.num_candidates // kernels.Launch().block)}" in text
    # Padded: 1008 candidates of 224 deterministic units, at the start and after each step.
    assert "tensor<13x1008x224xf32>" in text


@pytest.mark.compiled_text
@pytest.mark.parametrize("deter, hidden", [(32, 32), (32, 64)])
def test_every_loop_of_the_kernel_keeps_two_trips(deter, hidden):
    # Triton folds a one-trip loop away. At deter = hidden = rows = 32 that left the step loop
    # with no inner loop, and Triton's pipeliner (num_stages 2) then loaded each step's states
    # before the step before had stored them: NaNs on an H200 (experiments/results/gpu-h200-2).
    # The kernel halves `rows` where a sum would take one trip; here, in the Triton IR that
    # Pallas hands to XLA, every loop's upper bound must be 2 or more.
    cfg = tiny_config(horizon=5, deter_size=deter, hidden_size=hidden)
    cell = init_params(prng.key(0), cfg)["cell"]
    start = _start(cfg)
    actions = jnp.zeros((50, 5, cfg.action_size))
    eps = jnp.zeros((5, 50, cfg.stoch_size))

    def fn(cell, deter, stoch, actions, eps):
        return kernels.rollout(cell, deter, stoch, actions, eps, min_std=0.1, block=16, rows=32)

    original, printed = pl.pallas_call, io.StringIO()
    with (
        mock.patch.object(pl, "pallas_call", lambda *a, **k: original(*a, **{**k, "debug": True})),
        contextlib.redirect_stdout(printed),
    ):
        _cuda_text(fn, cell, start.deter, start.stoch, actions, eps)
    text = printed.getvalue()
    trips = []
    for lower, upper in re.findall(r"scf\.for %\w+ = (%\w+) to (%\w+) step", text):
        bound = re.search(rf"{upper} = arith\.addi {lower}, %c(\d+)_i32", text)
        assert bound, f"no constant bound for {upper}"
        trips.append(int(bound.group(1)))
    # The step loop (5 steps), then the GRU's gate and candidate sums (each one loop when
    # deter == hidden, else one for x W and one for h U), the prior's hidden layer and its statistics.
    assert trips[0] == 5 and len(trips) == (5 if deter == hidden else 7), trips
    assert min(trips) >= 2, trips
