"""A fused rollout kernel (Pallas, Triton on GPUs) for the planner's candidate rollouts.

  prior_noise(key, num, horizon, size)                      -> eps [H, J, S]
  pad_cell(cell, stoch, action)                             -> PaddedCell (the kernel's layout)
  rollout(cell, start_deter, start_stoch, actions, eps, ...) -> (deter [H, J, D], stoch [H, J, S])
  Launch(block, warps, stages, rows)                        -> the kernel's launch shape
  score_sequences / plan / act(..., launch)                 -> `planet_jax.agent.planner`'s, with this rollout

Experimental: not used by `train`, `evaluate` or `bench` (see README.md here). The planner
with this kernel is `plan` / `act` below; they reuse `planner.plan` and `planner.act`.

`rollout` computes exactly what `rssm.imagine` computes for the `rssm` variant (h_t, and
z_t = mean + std * eps_t along the prior), but as one kernel per call instead of about
eight per step. Why: on an H100 the XLA rollout is a chain of ~1000 dependent kernels per
action (8 per step: 4 GEMMs, 4 elementwise fusions), ~4.4 us each, bound by launch latency
(experiments/results/gpu-h100). Here each program takes a block of candidates through all
H steps, with h_t and z_t in its own rows of the outputs (in L1), and re-reads the
(L2-resident) weights every step. Measured on an H200 (experiments/results/gpu-h200-2):
correct, but 79 us per step at best against XLA's 41 us, so it is not the default: each
program's small dependent products wait on their loads.

Layout: the deterministic and hidden sizes are zero-padded to multiples of 32, the
stochastic and action sizes to powers of two >= 16 (Triton's tiles must be powers of two,
its products at least 16 wide); the padded units stay exactly zero through every step (see
`pad_cell`). Products use the backend's default precision, as XLA's do (TF32 on NVIDIA
GPUs since Ampere). How the kernel keeps its registers and shared memory in bounds: see
`_kernel`; `experiments/gpu/ptx_usage.py` compiles it for an H100 without one and reports both.

On a CPU the kernel runs in Pallas's interpreter: the same function (tests compare it with
`rssm.imagine`), slow, for tests only. TPUs (Mosaic) are not supported.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct
from jax.experimental import pallas as pl

from planet_jax.agent import planner
from planet_jax.config import Config, ConfigError
from planet_jax.model import rssm
from planet_jax.model.networks import Modules
from planet_jax.ops import backends, compiler

COLUMNS = 64
"""Output columns per block of the layers of h_t's and the hidden size: small accumulators."""
GRAIN = 32
"""The deterministic and hidden sizes are padded to multiples of this (200 -> 224)."""


def _column_blocks(n: int) -> list[tuple[int, int]]:
    """(start, width) blocks covering n (a multiple of GRAIN): COLUMNS wide, the last maybe GRAIN."""
    return [(start, min(COLUMNS, n - start)) for start in range(0, n, COLUMNS)]


def prior_noise(key: jax.Array, num: int, horizon: int, size: int, dtype=jnp.float32) -> jax.Array:
    """eps [H, J, S]: the standard normal draws `rssm.imagine` makes for J rollouts of H steps.

    `imagine` splits its key into H and draws normal(k_t, [J, S]) at step t; this draws
    the same numbers up front.
    """
    keys = jax.random.split(key, horizon)
    return jax.vmap(lambda k: jax.random.normal(k, (num, size), dtype))(keys)


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << (n - 1).bit_length())


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jnp.pad(x, [(0, t - s) for s, t in zip(x.shape, shape)])


@struct.dataclass
class PaddedCell:
    """The `rssm` cell's weights laid out for the kernel (`pad_cell`), with the true sizes."""

    weights: tuple[jax.Array, ...]
    deter: int = struct.field(pytree_node=False)
    stoch: int = struct.field(pytree_node=False)
    action: int = struct.field(pytree_node=False)


def pad_cell(cell: dict, *, stoch: int, action: int) -> PaddedCell:
    """The cell's weights zero-padded and split as the kernel reads them.

    `rollout` calls it when given the parameters themselves; the planner calls it once per
    search, outside the CEM loop. With zero weights and biases in the padded rows and
    columns, padded units of x and of the prior's hidden layer are relu(0) = 0, padded GRU
    units stay h = (1 - u) c + u h = 0.5 * 0 + 0.5 * 0 = 0 (c = tanh(0) = 0), and padded
    z = 0 + std * 0 (eps is padded with zeros), so the real units see exactly the products
    of the unpadded model.

    The GRU's kernels ([x, h] rows; `networks.GRUCell`) are split by rows into their x and h
    parts, laid out as three gate blocks (r | u | c) of d columns each.
    """
    if "gru" not in cell or "prior_hidden" not in cell:
        raise ValueError("the rollout kernel implements the rssm variant's cell only")
    deter = cell["gru"]["candidate"]["kernel"].shape[1]
    hidden = cell["transition_in"]["kernel"].shape[1]
    d = _round_up(deter, GRAIN)
    h = _round_up(hidden, GRAIN)
    s = _pow2(stoch, 16)  # 16: Triton's smallest dot dimension
    a = _pow2(action, 16)

    def gates(w, rows):  # [rows, 3 * deter] -> [rows', 3 * d], each gate padded on its own
        return jnp.concatenate([_pad(g, (rows, d)) for g in jnp.split(w, 3, axis=-1)], -1)

    def halves(w, rows):  # prior stats [rows, 2 * stoch] -> [rows', 2 * s]: mean | std
        return jnp.concatenate([_pad(g, (rows, s)) for g in jnp.split(w, 2, axis=-1)], -1)

    k_in, b_in = cell["transition_in"]["kernel"], cell["transition_in"]["bias"]
    # [W_r | W_u | W_c] and their biases; rows [:hidden] multiply x, rows [hidden:] h (or r * h).
    w_gru = jnp.concatenate([cell["gru"]["gates"]["kernel"], cell["gru"]["candidate"]["kernel"]], -1)
    bias = jnp.concatenate([cell["gru"]["gates"]["bias"], cell["gru"]["candidate"]["bias"]])
    weights = (
        _pad(k_in[:stoch], (s, h)),
        _pad(k_in[stoch:], (a, h)),
        _pad(b_in[None], (1, h)),
        gates(w_gru[:hidden], h),
        gates(bias[None], 1),
        gates(w_gru[hidden:], d),
        _pad(cell["prior_hidden"]["kernel"], (d, h)),
        _pad(cell["prior_hidden"]["bias"][None], (1, h)),
        halves(cell["prior_stats"]["kernel"], h),
        halves(cell["prior_stats"]["bias"][None], 1),
    )
    return PaddedCell(weights, deter, stoch, action)


def _sizes(cell: PaddedCell) -> dict[str, int]:
    """The padded sizes, read off the weights' shapes."""
    w_in_z, w_in_a, _, _, _, w_h = cell.weights[:6]
    return dict(deter=w_h.shape[0], hidden=w_in_z.shape[1], stoch=w_in_z.shape[0], action=w_in_a.shape[0])


def _kernel(
    h0_ref, z0_ref, action_ref, eps_ref,
    w_in_z, w_in_a, b_in, w_x, b_gru, w_h, w_ph, b_ph, w_stats, b_stats,
    deter_ref, stoch_ref, x_ref, hidden_ref, rh_ref, u_ref,
    *, horizon: int, min_std: float, rows: int, interpret: bool,
):  # fmt: skip
    """One block of M candidates through H prior steps (`RSSMCell.transition` + sampling).

    deter_ref [H + 1, M, D] and stoch_ref [H + 1, M, S] hold the start state at 0 and the
    state after step t at t + 1; x_ref, hidden_ref [M, hidden] and rh_ref, u_ref [M, D]
    (r * h_{t-1} and u: the candidate needs every unit's reset gate) are scratch. Activations go
    through these refs because a product reads its input `rows` columns at a time (Triton
    cannot slice a value in registers without shuffling it), and the GRU and hidden layer
    are computed up to `COLUMNS` output columns at a time, each as a loop over K (pipelined by
    Triton when num_stages > 1). Compiled for sm_90a (experiments/results/triton-sm90), the
    form before the GRUBlockCell cell (one pass over the three gates, reset after the hidden
    matrix) needed 248 registers and no stack per thread at 16 candidates, 8 warps, 2
    stages, 16 rows; this two-pass form has been checked in Pallas's interpreter only (a
    GPU session should re-run experiments/gpu/ptx_usage.py). A first form, whose products
    split whole activations held in registers, spilled 21 KB per thread.
    """
    m, d = deter_ref.shape[1:]
    s = stoch_ref.shape[2]
    hidden = w_ph.shape[1]
    # Every K loop below keeps two trips or more. Triton folds a one-trip loop away, and a
    # step loop left with no inner loop is pipelined when num_stages > 1: it then loaded a
    # step's states before the step before had stored them (NaNs, and results that changed
    # from call to call, at d = hidden = rows = 32 on an H200: experiments/results/gpu-h200-2).
    rows = min(rows, min(d, hidden) // 2)

    def barrier():  # stores by some threads before loads by others (the interpreter runs in order)
        if not interpret:
            from jax.experimental.pallas import triton as pl_triton

            pl_triton.debug_barrier()

    def zeros(n):
        return jnp.zeros((m, n), jnp.float32)

    def k_sum(terms, k_size, init):
        """sum over k = 0, rows, 2 rows, ... < k_size of terms(k), a tuple of partial products."""

        def body(i, acc):
            return tuple(a + t for a, t in zip(acc, terms(pl.multiple_of(i * rows, rows))))

        return jax.lax.fori_loop(0, k_size // rows, body, init)

    for start, width in _column_blocks(d):  # the same start state for every candidate
        cols = pl.ds(start, width)
        deter_ref[0, :, cols] = jnp.broadcast_to(h0_ref[:, cols], (m, width))
    stoch_ref[0] = jnp.broadcast_to(z0_ref[...], (m, s))
    barrier()

    def step(t, carry):
        z, a = stoch_ref[t], action_ref[t]
        for start, width in _column_blocks(hidden):  # x = relu([z, a] W + b)
            cols = pl.ds(start, width)
            x = jnp.dot(z, w_in_z[:, cols]) + jnp.dot(a, w_in_a[:, cols]) + b_in[:, cols]
            x_ref[:, cols] = jnp.maximum(x, 0.0)
        barrier()

        # h_t, up to COLUMNS units at a time, in two passes: the gates r, u from [x, h_{t-1}],
        # then the candidate from [x, r * h_{t-1}] (GRUBlockCell: reset before the matrix).
        def gate(j, start, width):  # gate j of (r, u, c): its columns of the [.., 3D] products
            return pl.ds(j * d + start, width)

        def gru_sums(h_rows, gate_ids, start, width):  # x W + h_rows(k) U, [M, width] per gate
            def x_terms(k):
                xk = x_ref[:, pl.ds(k, rows)]
                return tuple(jnp.dot(xk, w_x[pl.ds(k, rows), gate(j, start, width)]) for j in gate_ids)

            def h_terms(k):
                hk = h_rows(k)
                return tuple(jnp.dot(hk, w_h[pl.ds(k, rows), gate(j, start, width)]) for j in gate_ids)

            init = tuple(zeros(width) for _ in gate_ids)
            if hidden == d:  # one loop: both products' loads in flight per iteration
                both = k_sum(lambda k: x_terms(k) + h_terms(k), d, init + init)
                return tuple(p + q for p, q in zip(both[: len(gate_ids)], both[len(gate_ids) :]))
            return tuple(p + q for p, q in zip(k_sum(x_terms, hidden, init), k_sum(h_terms, d, init)))

        for start, width in _column_blocks(d):
            xr, xu = gru_sums(lambda k: deter_ref[t, :, pl.ds(k, rows)], (0, 1), start, width)
            out = pl.ds(start, width)
            rh_ref[:, out] = jax.nn.sigmoid(xr + b_gru[:, gate(0, start, width)]) * deter_ref[t, :, out]
            u_ref[:, out] = jax.nn.sigmoid(xu + b_gru[:, gate(1, start, width)])
        barrier()
        for start, width in _column_blocks(d):
            (xc,) = gru_sums(lambda k: rh_ref[:, pl.ds(k, rows)], (2,), start, width)
            c = jnp.tanh(xc + b_gru[:, gate(2, start, width)])
            out = pl.ds(start, width)
            u = u_ref[:, out]
            deter_ref[t + 1, :, out] = (1.0 - u) * c + u * deter_ref[t, :, out]
        barrier()
        for start, width in _column_blocks(hidden):  # the prior's hidden layer relu(h_t W + b)
            out = pl.ds(start, width)
            (pre,) = k_sum(
                lambda k, out=out: (jnp.dot(deter_ref[t + 1, :, pl.ds(k, rows)], w_ph[pl.ds(k, rows), out]),),
                d,
                (zeros(width),),
            )
            hidden_ref[:, out] = jnp.maximum(pre + b_ph[:, out], 0.0)
        barrier()

        def stats(k):
            hk = hidden_ref[:, pl.ds(k, rows)]
            return jnp.dot(hk, w_stats[pl.ds(k, rows), pl.ds(0, s)]), jnp.dot(hk, w_stats[pl.ds(k, rows), pl.ds(s, s)])

        mean, std = k_sum(stats, hidden, (zeros(s), zeros(s)))
        mean = mean + b_stats[:, pl.ds(0, s)]
        std = jax.nn.softplus(std + b_stats[:, pl.ds(s, s)]) + min_std
        stoch_ref[t + 1] = mean + std * eps_ref[t]
        barrier()
        return carry

    jax.lax.fori_loop(0, horizon, step, 0)


def rollout(
    cell: dict | PaddedCell,
    start_deter: jax.Array,
    start_stoch: jax.Array,
    actions: jax.Array,
    eps: jax.Array,
    *,
    min_std: float,
    block: int = 16,
    num_warps: int = 8,
    num_stages: int = 2,
    rows: int = 16,
    interpret: bool | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Prior rollouts of J candidates from one state, as one Pallas kernel.

    cell: the `rssm` variant's cell parameters, or `pad_cell`'s result for them;
    start_deter [D], start_stoch [S] (one environment's posterior state); actions
    [J, H, A]; eps [H, J, S] (`prior_noise`). block: candidates per program (a power of
    two >= 16); rows: weight rows per partial product (16 or 32); num_warps, num_stages:
    Triton's, per program (GPU). interpret: run in Pallas's interpreter; default: on CPU
    only.
    Returns deter [H, J, D] and stoch [H, J, S]: `rssm.imagine`'s states, time-major.
    """
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16, got {block}")
    if rows not in (16, GRAIN):
        raise ValueError(f"rows must be 16 or {GRAIN}, got {rows}")
    num, horizon, action = actions.shape
    deter, stoch = start_deter.shape[-1], start_stoch.shape[-1]
    if not isinstance(cell, PaddedCell):
        cell = pad_cell(cell, stoch=stoch, action=action)
    if (cell.deter, cell.stoch, cell.action) != (deter, stoch, action):
        raise ValueError(
            f"the cell has (deter, stoch, action) sizes {(cell.deter, cell.stoch, cell.action)}, "
            f"the inputs {(deter, stoch, action)}"
        )
    weights, size = cell.weights, _sizes(cell)
    num_padded = _round_up(num, block)
    dtype = start_deter.dtype

    h0 = _pad(start_deter[None], (1, size["deter"]))
    z0 = _pad(start_stoch[None], (1, size["stoch"]))
    acts = _pad(jnp.swapaxes(actions, 0, 1), (horizon, num_padded, size["action"]))
    noise = _pad(eps, (horizon, num_padded, size["stoch"]))

    def candidates(width):  # this program's candidates
        return pl.BlockSpec((block, width), lambda i: (i, 0))

    def steps(n, width):  # this program's candidates at each of n steps
        return pl.BlockSpec((n, block, width), lambda i: (0, i, 0))

    def whole(w):
        return pl.BlockSpec(w.shape, lambda i: (0,) * w.ndim)

    if interpret is None:
        interpret = backends.backend() == "cpu"
    compiler_params = None
    if not interpret:
        from jax.experimental.pallas import triton as pl_triton

        # Older JAX releases call it `TritonCompilerParams` (the device image has another JAX than the pin).
        params_class = getattr(pl_triton, "CompilerParams", None) or pl_triton.TritonCompilerParams
        compiler_params = params_class(num_warps=num_warps, num_stages=num_stages)
    out_deter, out_stoch, *_ = pl.pallas_call(
        functools.partial(_kernel, horizon=horizon, min_std=float(min_std), rows=rows, interpret=interpret),
        out_shape=[
            jax.ShapeDtypeStruct((horizon + 1, num_padded, size["deter"]), dtype),
            jax.ShapeDtypeStruct((horizon + 1, num_padded, size["stoch"]), dtype),
            jax.ShapeDtypeStruct((num_padded, size["hidden"]), dtype),  # scratch: x
            jax.ShapeDtypeStruct((num_padded, size["hidden"]), dtype),  # scratch: the prior's hidden layer
            jax.ShapeDtypeStruct((num_padded, size["deter"]), dtype),  # scratch: r * h_{t-1}
            jax.ShapeDtypeStruct((num_padded, size["deter"]), dtype),  # scratch: u
        ],
        grid=(num_padded // block,),
        in_specs=[
            whole(h0),
            whole(z0),
            steps(horizon, size["action"]),
            steps(horizon, size["stoch"]),
        ]
        + [whole(w) for w in weights],
        out_specs=[
            steps(horizon + 1, size["deter"]),
            steps(horizon + 1, size["stoch"]),
            candidates(size["hidden"]),
            candidates(size["hidden"]),
            candidates(size["deter"]),
            candidates(size["deter"]),
        ],
        interpret=interpret,
        compiler_params=compiler_params,
        name="planet_rollout",
    )(h0, z0, acts, noise, *weights)
    return out_deter[1:, :num, :deter], out_stoch[1:, :num, :stoch]


@dataclasses.dataclass(frozen=True)
class Launch:
    """The kernel's launch shape (hashable: a static argument of `act_jit`).

    block: candidates per program (a power of two >= 16); warps: Triton warps per program;
    stages: Triton's software-pipelining stages for the loops over weight rows (1: none);
    rows: weight rows per partial product (16 or 32; halved where a sum over 32 units would
    take one trip). The defaults compile for an H100 without register spills
    (experiments/results/triton-sm90).
    """

    block: int = 16
    warps: int = 8
    stages: int = 2
    rows: int = 16

    def __post_init__(self):
        if self.block < 16 or self.block & (self.block - 1):
            raise ConfigError(f"block must be a power of two >= 16, got {self.block}.")
        if self.rows not in (16, GRAIN):
            raise ConfigError(f"rows must be 16 or {GRAIN}, got {self.rows}.")


def check(cfg: Config) -> None:
    """Raise ConfigError where the kernel cannot run this config here."""
    if cfg.model.variant != "rssm":
        raise ConfigError(f"the rollout kernel implements the rssm variant only, got variant={cfg.model.variant!r}.")
    if backends.backend() == "tpu":
        raise ConfigError("the rollout kernel runs on GPUs (Triton) and, interpreted, on CPUs; not on TPUs.")


def features(cell, belief: rssm.State, actions: jax.Array, key: jax.Array, *, cfg: Config, launch: Launch) -> jax.Array:
    """[H, J, F] features of the prior rollout from one environment's belief State [],
    actions [J, H, A], with `imagine`'s noise. cell: the cell's parameters or `pad_cell`'s result."""
    check(cfg)
    num, horizon, _ = actions.shape
    eps = prior_noise(key, num, horizon, cfg.stoch_size, actions.dtype)
    deter, stoch = rollout(
        cell,
        belief.deter,
        belief.stoch,
        actions,
        eps,
        min_std=cfg.model.min_std,
        block=launch.block,
        num_warps=launch.warps,
        num_stages=launch.stages,
        rows=launch.rows,
    )
    return jnp.concatenate([deter, stoch], -1)


def score_sequences(
    params, belief: rssm.State, actions: jax.Array, key: jax.Array, *, cfg: Config, launch: Launch = Launch()
) -> jax.Array:
    """`planner.score_sequences` with the kernel's rollout; the reward head runs after it
    over all H x J features (as `reward_pass="after"`). Returns [J]."""
    reward = Modules(cfg).reward.apply(
        {"params": params["reward"]}, features(params["cell"], belief, actions, key, cfg=cfg, launch=launch)
    )
    return reward.sum(0)


def plan(params, belief: rssm.State, key: jax.Array, *, cfg: Config, launch: Launch = Launch()) -> jax.Array:
    """`planner.plan` with the kernel's rollout: belief State [] -> first action [A]. The
    weights are laid out for the kernel once per search, not per CEM iteration."""
    check(cfg)
    params = {**params, "cell": pad_cell(params["cell"], stoch=cfg.stoch_size, action=cfg.action_size)}
    return planner.plan(params, belief, key, cfg=cfg, score=functools.partial(score_sequences, launch=launch))


def act(
    params,
    belief: rssm.State,
    prev_action: jax.Array,
    obs: jax.Array,
    key: jax.Array,
    noise_scale: jax.Array | float | None = None,
    *,
    cfg: Config,
    explore: bool,
    launch: Launch = Launch(),
):
    """`planner.act` (posterior update, then the search per environment) with `plan` above.
    Returns (action [N, A], belief [N])."""
    plan_one = functools.partial(plan, launch=launch)
    return planner.act(params, belief, prev_action, obs, key, noise_scale, cfg=cfg, explore=explore, plan_one=plan_one)


act_jit = compiler.jit(act, static_argnames=("cfg", "explore", "launch"))
