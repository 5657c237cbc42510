"""XLA compiler options for the planner's programs, per backend, a `jit` that applies them,
and the precision of the model's matrix products.

  options(backend=None) -> dict   the options for a backend (default: JAX's default backend)
  jit(fun, **jit_kwargs)  -> fun'  `jax.jit(fun, **jit_kwargs)` compiled with `options` of the
                                   default backend, chosen at the first call (not at import:
                                   `jax.distributed.initialize` must come before any backend)
  precision(cfg)          -> context   `ModelConfig.matmul_precision` while a function is traced
  resolved_precision(cfg, backend=None) -> str   what that setting means on a backend (recorded)

Why: XLA:CPU (jaxlib 0.10) hands every matrix product to YNNPACK by default ("library
fusions", `xla_cpu_experimental_ynn_fusion_type`). YNNPACK is the faster of the two at large
square products, but the planner's products are skinny: J = 1000 candidates times 200 to
300 units, and a paper-size search is faster with XLA's own products (Eigen); the update,
whose largest products are the convolutions', is not, so it keeps JAX's defaults, and so
does everything else (experiments/results/README.md#opscompilerpy-xlas-own-products-for-the-planner).
A large square product is faster with YNNPACK, so `bench` reads its reference matmul rate
both ways and keeps the faster: the best the machine reaches.

The option only changes which library multiplies: the same products, summed in another
order (a test compares both forms to float tolerance). GPUs and TPUs get no options. A
`xla_cpu_experimental_ynn_fusion_type` in `XLA_FLAGS` wins over this module's choice.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any

import jax

from planet_jax.ops import backends

YNN_FUSION = "xla_cpu_experimental_ynn_fusion_type"
CPU_OPTIONS: dict[str, Any] = {YNN_FUSION: ""}
"""XLA:CPU: no YNNPACK library fusions (an empty list of fusion types), so dots run in XLA's own kernels."""


def options(backend: str | None = None) -> dict[str, Any]:
    """The compiler options for `backend` ('cpu', 'gpu', 'tpu'; default: JAX's default backend)."""
    backend = backend or backends.backend()
    if backend != "cpu" or YNN_FUSION in os.environ.get("XLA_FLAGS", ""):
        return {}
    return dict(CPU_OPTIONS)


class _Jit:
    """`jax.jit(fun, compiler_options=options(), **kwargs)`, made at the first use on each backend.

    Calls, `lower`, `trace`, `eval_shape` and the rest go to that jitted function.
    """

    def __init__(self, fun: Callable, kwargs: dict[str, Any]):
        functools.update_wrapper(self, fun)
        self._fun, self._kwargs, self._jitted = fun, kwargs, {}

    def jitted(self) -> Any:
        backend = backends.backend()
        if backend not in self._jitted:
            self._jitted[backend] = jax.jit(self._fun, compiler_options=options(backend), **self._kwargs)
        return self._jitted[backend]

    def __call__(self, *args, **kwargs):
        return self.jitted()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.jitted(), name)


def jit(fun: Callable, **kwargs) -> Callable:
    """`jax.jit(fun, **kwargs)` compiled with this module's `options` for the default backend."""
    return _Jit(fun, kwargs)


def precision(cfg) -> contextlib.AbstractContextManager:
    """The config's `matmul_precision` as `jax.default_matmul_precision`, for use around a traced
    body (products take the precision in effect when they are traced); `default` changes nothing."""
    value = cfg.model.matmul_precision
    return contextlib.nullcontext() if value == "default" else jax.default_matmul_precision(value)


def resolved_precision(cfg, backend: str | None = None) -> str:
    """What the config's float32 products run as on `backend` (`backends.matmul_precision`)."""
    return backends.matmul_precision(cfg.model.matmul_precision, backend)


def cache_dir() -> str:
    """Where compiled programs are kept between runs: $PLANET_JAX_CACHE, else
    $XDG_CACHE_HOME/planet_jax/xla, else ~/.cache/planet_jax/xla (one per user)."""
    if os.environ.get("PLANET_JAX_CACHE"):
        return os.environ["PLANET_JAX_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "planet_jax", "xla")


def use_compilation_cache(enabled: bool = True) -> str | None:
    """Turn JAX's persistent compilation cache on (in `cache_dir()`) or off, for this
    process; returns the directory in use. A resumed or evaluated run then loads the
    programs it compiled before instead of compiling them again; an executable loaded from
    the cache is the one that was compiled, so results do not change. A
    JAX_COMPILATION_CACHE_DIR in the environment wins, as JAX documents it."""
    if not enabled:
        jax.config.update("jax_compilation_cache_dir", None)
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # an unwritable home: run without the cache rather than fail
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    return path
