"""The huge-page re-exec of the command-line entry points (planet_jax.ops.hostmem)."""

import os
import subprocess
import sys

import pytest

from planet_jax.ops import hostmem

GOOD = (2, 36)


def test_env_adds_the_tunable_when_it_can_help():
    env = hostmem.huge_pages_env({"PATH": "/bin"}, GOOD, "madvise")
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_env_keeps_other_tunables():
    env = hostmem.huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, GOOD, "madvise")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    ("environ", "glibc", "mode"),
    [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, GOOD, "madvise"),  # already set: no loop
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GOOD, "madvise"),  # the user chose
        ({"PLANET_JAX_HUGE_PAGES": "0"}, GOOD, "madvise"),  # opted out
        ({}, (2, 34), "madvise"),  # glibc without the tunable
        ({}, None, "madvise"),  # not glibc (musl, macOS)
        ({}, GOOD, "always"),  # huge pages already on for every mapping
        ({}, GOOD, "never"),  # and off for good
        ({}, GOOD, None),  # no THP support
    ],
)
def test_env_is_none_when_reexec_changes_nothing(environ, glibc, mode):
    assert hostmem.huge_pages_env(environ, glibc, mode) is None


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert hostmem.thp_mode(str(path)) == "madvise"
    assert hostmem.thp_mode(str(tmp_path / "missing")) is None


SCRIPT = "import os; from planet_jax.ops import hostmem; hostmem.reexec_with_huge_pages(); print(os.environ.get('GLIBC_TUNABLES'))"


def _run(**env):
    environ = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", hostmem.OPT_OUT)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**environ, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or hostmem.huge_pages_env({}, hostmem.glibc_version(), hostmem.thp_mode()) is None,
    reason="this machine's glibc or kernel cannot use the tunable",
)
def test_the_process_reexecutes_itself_once_with_the_tunable():
    assert _run() == "glibc.malloc.hugetlb=1"
    assert _run(GLIBC_TUNABLES="glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert _run(PLANET_JAX_HUGE_PAGES="0") == "None"
