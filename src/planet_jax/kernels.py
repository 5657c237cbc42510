"""A fused rollout kernel (Pallas, Triton on GPUs) for the planner's candidate rollouts.

  prior_noise(key, num, horizon, size)                      -> eps [H, J, S]
  rollout(cell, start_deter, start_stoch, actions, eps, ...) -> (deter [H, J, D], stoch [H, J, S])

`rollout` computes exactly what `rssm.imagine` computes for the `rssm` variant (h_t, and
z_t = mean + std * eps_t along the prior), but as one kernel per call instead of about
eight per step. Why: on an H100 the XLA rollout is a chain of ~1000 dependent kernels per
action (8 per step: 4 GEMMs, 4 elementwise fusions), ~4.4 us each, bound by launch latency
(experiments/results/gpu-h100). Here each program takes a block of candidates through all
H steps with h_t and z_t in registers and re-reads the (L2-resident) weights every step.

Layout: every size is zero-padded to a power of two (Triton's tensors must be; the padded
rows and columns stay exactly zero through every step, see `_padded`), and each matrix
product is split into K chunks of `CHUNK` rows so that one chunk of weights, [64, N] float32,
fits in shared memory. Products use the backend's default precision, as XLA's do (TF32 on
NVIDIA GPUs since Ampere).

On a CPU the kernel runs in Pallas's interpreter: the same function (tests compare it with
`rssm.imagine`), slow, for tests only. TPUs (Mosaic) are not supported.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

CHUNK = 64
"""Rows of weights per partial product: [64, 256] float32 is 64 KB of shared memory."""


def prior_noise(key: jax.Array, num: int, horizon: int, size: int, dtype=jnp.float32) -> jax.Array:
    """eps [H, J, S]: the standard normal draws `rssm.imagine` makes for J rollouts of H steps.

    `imagine` splits its key into H and draws normal(k_t, [J, S]) at step t; this draws
    the same numbers up front.
    """
    keys = jax.random.split(key, horizon)
    return jax.vmap(lambda k: jax.random.normal(k, (num, size), dtype))(keys)


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << (n - 1).bit_length())


def _pad(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jnp.pad(x, [(0, t - s) for s, t in zip(x.shape, shape)])


def _padded(cell: dict, deter: int, stoch: int, action: int) -> tuple[tuple[jax.Array, ...], dict[str, int]]:
    """The cell's weights zero-padded: (weights, sizes).

    With zero weights and biases in the padded rows and columns, padded units of x and of
    the prior's hidden layer are relu(0) = 0, padded GRU units stay h = (1 - u) n + u h
    = 0.5 * 0 + 0.5 * 0 = 0 (n = tanh(0) = 0), and padded z = 0 + std * 0 (eps is padded
    with zeros), so the real units see exactly the products of the unpadded model.
    """
    hidden = cell["transition_in"]["kernel"].shape[1]
    d = _pow2(deter, CHUNK)
    h = _pow2(hidden, CHUNK)
    s = _pow2(stoch, 16)  # 16: Triton's smallest dot dimension
    a = _pow2(action, 16)

    def gates(w, rows):  # [rows, 3 * deter] -> [rows', 3 * d], each gate padded on its own
        return jnp.concatenate([_pad(g, (rows, d)) for g in jnp.split(w, 3, axis=-1)], -1)

    def halves(w, rows):  # prior stats [rows, 2 * stoch] -> [rows', 2 * s]: mean | std
        return jnp.concatenate([_pad(g, (rows, s)) for g in jnp.split(w, 2, axis=-1)], -1)

    k_in, b_in = cell["transition_in"]["kernel"], cell["transition_in"]["bias"]
    gru = cell["gru"]
    weights = (
        _pad(k_in[:stoch], (s, h)),
        _pad(k_in[stoch:], (a, h)),
        _pad(b_in[None], (1, h)),
        gates(gru["input"]["kernel"], h),
        gates(gru["input"]["bias"][None], 1),
        gates(gru["hidden"]["kernel"], d),
        gates(gru["hidden"]["bias"][None], 1),
        _pad(cell["prior_hidden"]["kernel"], (d, h)),
        _pad(cell["prior_hidden"]["bias"][None], (1, h)),
        halves(cell["prior_stats"]["kernel"], h),
        halves(cell["prior_stats"]["bias"][None], 1),
    )
    return weights, dict(deter=d, hidden=h, stoch=s, action=a)


def _chunks(x: jax.Array) -> list[jax.Array]:
    """x [M, K] as K / CHUNK column blocks [M, CHUNK] (K <= CHUNK: x itself)."""
    return jnp.split(x, x.shape[1] // CHUNK, axis=1) if x.shape[1] > CHUNK else [x]


def _matmul(parts: list[jax.Array], w_ref, cols) -> jax.Array:
    """concat(parts) [M, K] @ w_ref[:K, cols], as a sum of one partial product per part."""
    out = None
    for i, part in enumerate(parts):
        rows = pl.ds(i * CHUNK, part.shape[1])
        term = jnp.dot(part, w_ref[rows, cols])
        out = term if out is None else out + term
    return out


def _kernel(
    h0_ref, z0_ref, action_ref, eps_ref,
    w_in_z, w_in_a, b_in, w_x, b_x, w_h, b_h, w_ph, b_ph, w_stats, b_stats,
    deter_ref, stoch_ref,
    *, horizon: int, min_std: float,
):  # fmt: skip
    """One block of candidates through H prior steps (`RSSMCell.transition` + sampling)."""
    d = h0_ref.shape[1]
    s = z0_ref.shape[1]

    def gate(j, xs, hs):  # (x W_j + b_j, h U_j + c_j) for gate j of (r, u, n)
        cols = pl.ds(j * d, d)
        return _matmul(xs, w_x, cols) + b_x[:, cols], _matmul(hs, w_h, cols) + b_h[:, cols]

    def step(t, carry):
        h, z = carry
        x = jnp.dot(z, w_in_z[...]) + jnp.dot(action_ref[t], w_in_a[...]) + b_in[...]
        xs, hs = _chunks(jnp.maximum(x, 0.0)), _chunks(h)
        # The gates one after another, so that fewer [M, d] values are live at once.
        xr, hr = gate(0, xs, hs)
        r = jax.nn.sigmoid(xr + hr)
        xu, hu = gate(1, xs, hs)
        u = jax.nn.sigmoid(xu + hu)
        xn, hn = gate(2, xs, hs)
        h = (1.0 - u) * jnp.tanh(xn + r * hn) + u * h
        hidden = _chunks(jnp.maximum(_matmul(_chunks(h), w_ph, pl.ds(0, w_ph.shape[1])) + b_ph[...], 0.0))
        mean = _matmul(hidden, w_stats, pl.ds(0, s)) + b_stats[:, pl.ds(0, s)]
        std = jax.nn.softplus(_matmul(hidden, w_stats, pl.ds(s, s)) + b_stats[:, pl.ds(s, s)]) + min_std
        z = mean + std * eps_ref[t]
        deter_ref[t] = h
        stoch_ref[t] = z
        return h, z

    jax.lax.fori_loop(0, horizon, step, (h0_ref[...], z0_ref[...]))


def rollout(
    cell: dict,
    start_deter: jax.Array,
    start_stoch: jax.Array,
    actions: jax.Array,
    eps: jax.Array,
    *,
    min_std: float,
    block: int = 16,
    num_warps: int = 4,
    interpret: bool | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Prior rollouts of J candidates from one state, as one Pallas kernel.

    cell: the `rssm` variant's cell parameters; start_deter [D], start_stoch [S] (one
    environment's posterior state); actions [J, H, A]; eps [H, J, S] (`prior_noise`).
    block: candidates per program (a power of two >= 16); num_warps: per program (GPU).
    interpret: run in Pallas's interpreter; default: on CPU only.
    Returns deter [H, J, D] and stoch [H, J, S]: `rssm.imagine`'s states, time-major.
    """
    if "gru" not in cell or "prior_hidden" not in cell:
        raise ValueError("the rollout kernel implements the rssm variant's cell only")
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16, got {block}")
    num, horizon, action = actions.shape
    deter, stoch = start_deter.shape[-1], start_stoch.shape[-1]
    weights, size = _padded(cell, deter, stoch, action)
    num_padded = -(-num // block) * block
    dtype = start_deter.dtype

    h0 = jnp.broadcast_to(_pad(start_deter[None], (1, size["deter"])), (num_padded, size["deter"]))
    z0 = jnp.broadcast_to(_pad(start_stoch[None], (1, size["stoch"])), (num_padded, size["stoch"]))
    acts = _pad(jnp.swapaxes(actions, 0, 1), (horizon, num_padded, size["action"]))
    noise = _pad(eps, (horizon, num_padded, size["stoch"]))

    def rows(width):  # this program's candidates
        return pl.BlockSpec((block, width), lambda i: (i, 0))

    def steps(width):  # this program's candidates at every step
        return pl.BlockSpec((horizon, block, width), lambda i: (0, i, 0))

    def whole(w):
        return pl.BlockSpec(w.shape, lambda i: (0,) * w.ndim)

    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    compiler_params = None
    if not interpret:
        from jax.experimental.pallas import triton as pl_triton

        compiler_params = pl_triton.CompilerParams(num_warps=num_warps, num_stages=1)
    out_deter, out_stoch = pl.pallas_call(
        functools.partial(_kernel, horizon=horizon, min_std=float(min_std)),
        out_shape=[
            jax.ShapeDtypeStruct((horizon, num_padded, size["deter"]), dtype),
            jax.ShapeDtypeStruct((horizon, num_padded, size["stoch"]), dtype),
        ],
        grid=(num_padded // block,),
        in_specs=[rows(size["deter"]), rows(size["stoch"]), steps(size["action"]), steps(size["stoch"])]
        + [whole(w) for w in weights],
        out_specs=[steps(size["deter"]), steps(size["stoch"])],
        interpret=interpret,
        compiler_params=compiler_params,
        name="planet_rollout",
    )(h0, z0, acts, noise, *weights)
    return out_deter[:, :num, :deter], out_stoch[:, :num, :stoch]
