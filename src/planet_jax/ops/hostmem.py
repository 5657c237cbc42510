"""glibc malloc settings for XLA:CPU's buffers: a re-exec of the command-line entry points.

XLA:CPU allocates each executable's temporaries with `malloc` on every call. With glibc's
defaults, buffers this large are fresh `mmap`s, returned to the kernel when freed, so every
call faults in and zeroes hundreds of megabytes of new pages: about a quarter of a
paper-size update on the 2-core EPYC, and the cause of the bimodal update times on the
Xeon, where every other call took 1.6x as long as the one before
(experiments/results/README.md#opshostmempy-malloc-settings). Four tunables make malloc
keep and reuse those buffers instead (`TUNABLES`):

  glibc.malloc.mmap_max=0          no buffer is its own mapping: all come from the heap
  glibc.malloc.arena_max=1         one heap for every thread (XLA runs programs on its own
                                   threads, whose arenas' 64 MiB heaps cannot hold the
                                   largest buffers, so those would be mapped after all)
  glibc.malloc.trim_threshold=...  freed memory stays in the heap for the next call
  glibc.malloc.hugetlb=1           transparent huge pages for the heap (glibc >= 2.35 and
                                   the kernel's THP mode `madvise`): fewer TLB misses

The steady state is the same memory as before (each call reuses the previous call's
buffers), and the process never hands it back until it exits.

Tunables are read once, when a process starts, so `python -m planet_jax.train` (`bench`,
`evaluate`) re-executes itself with them before importing JAX: same PID, same arguments,
`GLIBC_TUNABLES` extended. A tunable the user set keeps the user's value. Nothing happens
when the C library is not glibc >= 2.26 or when `PLANET_JAX_MALLOC=0` (or the older
`PLANET_JAX_HUGE_PAGES=0`). Library code never re-executes anything; in your own scripts
start Python with `GLIBC_TUNABLES=` + `tunables_string()` to get the same effect.

This module imports only the standard library, so it can run before JAX loads.
"""

from __future__ import annotations

import os
import sys

TUNABLES = {
    "glibc.malloc.mmap_max": "0",
    "glibc.malloc.arena_max": "1",
    "glibc.malloc.trim_threshold": str(1 << 40),
    "glibc.malloc.hugetlb": "1",
}
"""name -> value of the tunables the entry points run with (see the module docstring)."""

HUGE_PAGES = "glibc.malloc.hugetlb"
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"
OPT_OUT = "PLANET_JAX_MALLOC"
OLD_OPT_OUT = "PLANET_JAX_HUGE_PAGES"


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the running glibc, or None when the C library is not glibc."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # e.g. "glibc 2.36"
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):
        return None


def thp_mode(path: str = THP_MODE) -> str | None:
    """The kernel's transparent-huge-page mode ('always', 'madvise', 'never') or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def parse(tunables: str) -> dict[str, str]:
    """A `GLIBC_TUNABLES` string ('a=1:b=2') as {name: value}."""
    pairs = (item.partition("=") for item in tunables.split(":") if item)
    return {name: value for name, _, value in pairs}


def wanted(glibc: tuple[int, int] | None, mode: str | None) -> dict[str, str]:
    """The `TUNABLES` this C library and kernel can use."""
    if glibc is None or glibc < (2, 26):
        return {}
    # hugetlb=1 needs glibc 2.35, and only changes something in THP mode `madvise`
    # (with `always` every mapping has huge pages already, with `never` none can).
    huge = glibc >= (2, 35) and mode == "madvise"
    return {name: value for name, value in TUNABLES.items() if name != HUGE_PAGES or huge}


def malloc_env(environ: dict[str, str], glibc: tuple[int, int] | None, mode: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when re-executing would change nothing."""
    if environ.get(OPT_OUT) == "0" or environ.get(OLD_OPT_OUT) == "0":
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    have = parse(tunables)
    missing = [f"{name}={value}" for name, value in wanted(glibc, mode).items() if name not in have]
    if not missing:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join([tunables, *missing] if tunables else missing)}


def tunables_string(glibc: tuple[int, int] | None = None, mode: str | None = None) -> str:
    """The `GLIBC_TUNABLES` value the entry points add on this machine (e.g. for scripts)."""
    glibc, mode = glibc or glibc_version(), mode or thp_mode()
    return ":".join(f"{name}={value}" for name, value in wanted(glibc, mode).items())


def describe(environ: dict[str, str] | None = None) -> str:
    """The malloc setting this process runs with, in words, for benchmark records:
    'malloc heap reuse, huge pages', 'malloc huge pages', or '' (glibc's defaults)."""
    have = parse((os.environ if environ is None else environ).get("GLIBC_TUNABLES", ""))
    reuse = all(have.get(name) == TUNABLES[name] for name in TUNABLES if name != HUGE_PAGES)
    huge = have.get(HUGE_PAGES) == "1"
    return ", ".join(part for part in ("malloc heap reuse" if reuse else "", "huge pages" if huge else "") if part)


def reexec_with_malloc_settings() -> None:
    """Replace this process with the same command under the `TUNABLES` it lacks.

    Call it first thing in a command-line entry point, before JAX is imported. Returns
    (doing nothing) when they are already set, cannot help, or are opted out of.
    """
    if not sys.platform.startswith("linux"):
        return
    env = malloc_env(dict(os.environ), glibc_version(), thp_mode())
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # cannot re-execute (e.g. the interpreter moved): run with glibc's defaults
        return
