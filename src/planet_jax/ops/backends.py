"""The one platform switch: every setting whose best value depends on the backend is
decided here, and nowhere else.

  backend()                  -> 'cpu' | 'gpu' | 'tpu'   JAX's default backend
  resolve(cfg, backend=None) -> Config                  every `auto` replaced by its value here
  choices(cfg, backend=None) -> {field: value}          those values, for run and benchmark records
  prng_impl(backend=None)    -> str                     the PRNG implementation keys are made with
  conv_impl, axis, reward_pass, rollout_unroll(value, ..., backend=None) -> the rules, one per kind

The config keeps `auto` (a run trained on a GPU resumes on a CPU with the CPU's choices).
`programs.compiled` builds the training programs from `resolve(cfg)`, once; everywhere else
(`bench`, `evaluate`, `Agent`, tests) the helpers in the model code (`planner.reward_pass`,
`programs.agent_mode`, ...) apply the same rules to a config that is still `auto`, so both
give the same program. Each rule's reason is in its docstring, with a link to the
measurement.
"""

from __future__ import annotations

import jax

from planet_jax import config as C

AUTO_FIELDS = ("conv_impl", "agent_axis", "env_axis", "reward_pass", "rollout_unroll")
"""The settings with a backend-dependent default (`auto`, or 0 for `rollout_unroll`)."""


def backend() -> str:
    """JAX's default backend, read at each call (tests trace for a GPU by patching it)."""
    return jax.default_backend()


def conv_impl(value: str, backend_name: str | None = None) -> str:
    """`matmul` or `xla` for a `conv_impl` setting: `auto` is `xla` on TPU and `matmul`
    elsewhere, since the matmul forms written for XLA:CPU are also the faster on a GPU
    (experiments/results/README.md#backend-defaults)."""
    if value == "auto":
        return "xla" if (backend_name or backend()) == "tpu" else "matmul"
    return value


def axis(value: str, backend_name: str | None = None) -> str:
    """`map` or `vmap` for an `agent_axis` or `env_axis` setting: `auto` is `map` on CPU (each
    search's or agent's activations stay in the cache) and `vmap` elsewhere (one batched
    program: what makes N seeds cheap on a GPU; experiments/results/README.md#backend-defaults)."""
    if value == "auto":
        return "map" if (backend_name or backend()) == "cpu" else "vmap"
    return value


def reward_pass(value: str, backend_name: str | None = None) -> str:
    """The planner's `reward_pass`: `auto` is `per_step` on CPU and `after` (fewer kernels in
    the rollout's sequential chain) elsewhere, the faster on each
    (experiments/results/README.md#backend-defaults)."""
    if value == "auto":
        return "per_step" if (backend_name or backend()) == "cpu" else "after"
    return value


def rollout_unroll(value: int, horizon: int, backend_name: str | None = None) -> int:
    """The planner's `rollout_unroll`: 0 (auto) is the horizon on GPU/TPU and 1 on CPU (no
    faster unrolled there, and slower to compile; experiments/results/README.md#backend-defaults)."""
    if value == 0:
        return 1 if (backend_name or backend()) == "cpu" else horizon
    return value


def prng_impl(backend_name: str | None = None) -> str:
    """The PRNG implementation keys are made with (`rng.key`): `threefry2x32_unrolled` on CPU,
    where JAX's own lowering of the hash is a rolled loop (experiments/results/cpu-epyc-rng),
    and JAX's `threefry2x32` elsewhere; both draw the same numbers."""
    return "threefry2x32_unrolled" if (backend_name or backend()) == "cpu" else "threefry2x32"


# What JAX's DEFAULT precision does to float32 products on each backend.
_DEFAULT_PRECISION = {"cpu": "float32", "gpu": "tensorfloat32", "tpu": "bfloat16"}


def matmul_precision(value: str, backend_name: str | None = None) -> str:
    """What a `matmul_precision` setting's float32 products run as: `float32`, `tensorfloat32`
    or `bfloat16`. `default` is the backend's own choice (TensorFloat-32 on NVIDIA GPUs since
    Ampere, one bfloat16 pass on TPUs, float32 on CPUs, which have no lower-precision float32
    products)."""
    b = backend_name or backend()
    if value == "default" or b == "cpu":
        return _DEFAULT_PRECISION.get(b, "float32")
    return value


def _settings(cfg: C.Config, b: str) -> dict:
    """{field: value} of every `AUTO_FIELDS` setting on backend b."""
    return {
        "conv_impl": conv_impl(cfg.model.conv_impl, b),
        "agent_axis": axis(cfg.train.agent_axis, b),
        "env_axis": axis(cfg.planner.env_axis, b),
        "reward_pass": reward_pass(cfg.planner.reward_pass, b),
        "rollout_unroll": rollout_unroll(cfg.planner.rollout_unroll, cfg.planner.horizon, b),
    }


def choices(cfg: C.Config, backend_name: str | None = None) -> dict:
    """{field: value} of every `AUTO_FIELDS` setting as it runs on this backend, with the
    backend itself and what the products' precision means there: what run summaries and
    benchmark records hold."""
    b = backend_name or backend()
    return {
        "backend": b,
        "matmul_precision": matmul_precision(cfg.model.matmul_precision, b),
        "prng_impl": prng_impl(b),
        **_settings(cfg, b),
    }


def resolve(cfg: C.Config, backend_name: str | None = None) -> C.Config:
    """The config with every backend-dependent setting at its value on this backend."""
    return C.replace(cfg, **_settings(cfg, backend_name or backend()))
