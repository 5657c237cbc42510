"""Transparent huge pages for XLA:CPU's buffers: a re-exec of the command-line entry points.

XLA:CPU allocates each executable's temporaries with `malloc` on every call; buffers this
large are fresh `mmap`s, so every call touches hundreds of thousands of new 4 KiB pages
and the kernel faults and zeroes each one: about a quarter of a paper-size update on the
2-core EPYC (experiments/results/README.md#opshostmempy-transparent-huge-pages). glibc's
`glibc.malloc.hugetlb=1` tunable makes malloc ask for transparent huge pages
(`madvise(MADV_HUGEPAGE)`), which removes nearly all of those faults. PyTorch gains as
much, so compare frameworks under equal settings.

The tunable is read once, when a process starts, so `python -m planet_jax.train`
(`bench`, `evaluate`) re-executes itself with it before importing JAX: same PID, same
arguments, `GLIBC_TUNABLES` extended. Nothing happens when the process cannot use it
(not Linux with glibc >= 2.35, or transparent huge pages not in `madvise` mode: with
`always` they are already on, with `never` they are off for good) or when
`PLANET_JAX_HUGE_PAGES=0`. Library code never re-executes anything; in your own scripts
start Python with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` to get the same effect.

This module imports only the standard library, so it can run before JAX loads.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"
OPT_OUT = "PLANET_JAX_HUGE_PAGES"


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


def huge_pages_env(environ: dict[str, str], glibc: tuple[int, int] | None, mode: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when re-executing would change nothing."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if environ.get(OPT_OUT) == "0" or "glibc.malloc.hugetlb" in tunables:
        return None
    if glibc is None or glibc < (2, 35) or mode != "madvise":
        return None
    return {**environ, "GLIBC_TUNABLES": f"{tunables}:{TUNABLE}" if tunables else TUNABLE}


def reexec_with_huge_pages() -> None:
    """Replace this process with the same command under `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`.

    Call it first thing in a command-line entry point, before JAX is imported. Returns
    (doing nothing) when the tunable is already set, cannot help, or is opted out of.
    """
    if not sys.platform.startswith("linux"):
        return
    env = huge_pages_env(dict(os.environ), glibc_version(), thp_mode())
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # cannot re-execute (e.g. the interpreter moved): run without huge pages
        return
