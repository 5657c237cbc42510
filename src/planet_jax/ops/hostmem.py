"""glibc malloc settings for XLA:CPU's buffers: a re-exec of the command-line entry points.

XLA:CPU allocates each executable's temporaries with `malloc` on every call. With glibc's
defaults, buffers this large are fresh `mmap`s, returned to the kernel when freed, so every
call faults in and zeroes hundreds of megabytes of new pages: about a quarter of a
paper-size update on the 2-core EPYC. `PLANET_JAX_MALLOC` chooses what the entry points add
to `GLIBC_TUNABLES` (experiments/results/README.md#opshostmempy-malloc-settings):

  huge (default)  glibc.malloc.hugetlb=1: transparent huge pages for those mappings
                  (glibc >= 2.35, the kernel's THP mode `madvise`), which removes nearly
                  all of the faults' cost.
  reuse           also mmap_max=0, arena_max=1 and a 1 TiB trim_threshold: the heap keeps
                  the buffers, so calls after the first few fault nothing. On the 2-core
                  Xeon a B=16 update is steady at 1.8 to 1.9 s instead of alternating 1.7
                  and 3.0 s, and B=50 takes 5.2 to 6.0 s instead of 6.6; but the heap
                  fragments (peak memory 2.3x at B=16, 1.9 to 2.7x at B=50), it still grows
                  now and then (a call at 2.6x), and the planner is 8% slower.
  0               nothing (glibc's defaults); `PLANET_JAX_HUGE_PAGES=0` is the older name.

Tunables are read once, when a process starts, so `python -m planet_jax.train` (`bench`,
`evaluate`) re-executes itself with them before importing JAX: same PID, same arguments,
`GLIBC_TUNABLES` extended. A tunable the user set keeps the user's value. Nothing happens
when the C library is not glibc >= 2.26. Library code never re-executes anything; in your
own scripts start Python with `GLIBC_TUNABLES=` + `tunables_string()` for the same effect.

This module imports only the standard library, so it can run before JAX loads.
"""

from __future__ import annotations

import os
import sys

HUGE_PAGES = "glibc.malloc.hugetlb"
REUSE = {
    "glibc.malloc.mmap_max": "0",
    "glibc.malloc.arena_max": "1",
    "glibc.malloc.trim_threshold": str(1 << 40),
}
"""name -> value of the tunables `reuse` adds to huge pages (see the module docstring)."""

SETTINGS = {"huge": {HUGE_PAGES: "1"}, "reuse": {**REUSE, HUGE_PAGES: "1"}, "0": {}}
"""`PLANET_JAX_MALLOC` value -> the tunables it asks for (before what the machine can use)."""

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


def setting(environ: dict[str, str]) -> str:
    """The `PLANET_JAX_MALLOC` choice: 'huge' (default), 'reuse' or '0'."""
    if environ.get(OLD_OPT_OUT) == "0":
        return "0"
    value = environ.get(OPT_OUT, "huge")
    if value not in SETTINGS:
        raise ValueError(f"{OPT_OUT} must be one of {', '.join(SETTINGS)}, got {value!r}")
    return value


def wanted(glibc: tuple[int, int] | None, mode: str | None, choice: str = "huge") -> dict[str, str]:
    """The tunables of setting `choice` that this C library and kernel can use."""
    if glibc is None or glibc < (2, 26):
        return {}
    # hugetlb=1 needs glibc 2.35, and only changes something in THP mode `madvise`
    # (with `always` every mapping has huge pages already, with `never` none can).
    huge = glibc >= (2, 35) and mode == "madvise"
    return {name: value for name, value in SETTINGS[choice].items() if name != HUGE_PAGES or huge}


def malloc_env(environ: dict[str, str], glibc: tuple[int, int] | None, mode: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when re-executing would change nothing."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    have = parse(tunables)
    missing = [f"{name}={value}" for name, value in wanted(glibc, mode, setting(environ)).items() if name not in have]
    if not missing:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join([tunables, *missing] if tunables else missing)}


def tunables_string(choice: str = "huge", glibc: tuple[int, int] | None = None, mode: str | None = None) -> str:
    """The `GLIBC_TUNABLES` value setting `choice` adds on this machine (e.g. for scripts)."""
    glibc, mode = glibc or glibc_version(), mode or thp_mode()
    return ":".join(f"{name}={value}" for name, value in wanted(glibc, mode, choice).items())


def describe(environ: dict[str, str] | None = None) -> str:
    """The malloc setting this process runs with, in words, for benchmark records:
    'malloc heap reuse, huge pages', 'malloc heap reuse', 'malloc huge pages' or ''."""
    have = parse((os.environ if environ is None else environ).get("GLIBC_TUNABLES", ""))
    reuse = all(have.get(name) == value for name, value in REUSE.items())
    huge = have.get(HUGE_PAGES) == "1"
    if reuse:
        return "malloc heap reuse, huge pages" if huge else "malloc heap reuse"
    return "malloc huge pages" if huge else ""


def reexec_with_malloc_settings() -> None:
    """Replace this process with the same command under the tunables of `PLANET_JAX_MALLOC` it lacks.

    Call it first thing in a command-line entry point, before JAX is imported. Returns
    (doing nothing) when they are already set, cannot help, or are opted out of. An unknown
    `PLANET_JAX_MALLOC` stops the command with a one-line error and exit status 2, as a bad
    flag does.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        env = malloc_env(dict(os.environ), glibc_version(), thp_mode())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:  # cannot re-execute (e.g. the interpreter moved): run with glibc's defaults
        return
