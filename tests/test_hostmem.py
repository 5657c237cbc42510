"""The malloc-settings re-exec of the command-line entry points (planet_jax.ops.hostmem)."""

import os
import subprocess
import sys

import pytest

from planet_jax.ops import hostmem

GOOD = (2, 36)
ALL = (
    "glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=1099511627776:glibc.malloc.hugetlb=1"
)
NO_HUGE = ALL.removesuffix(":glibc.malloc.hugetlb=1")


def test_env_adds_every_tunable_when_all_can_help():
    env = hostmem.malloc_env({"PATH": "/bin"}, GOOD, "madvise")
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": ALL}


def test_huge_pages_only_where_glibc_and_the_kernel_can_use_them():
    for glibc, mode in [((2, 34), "madvise"), (GOOD, "always"), (GOOD, "never"), (GOOD, None)]:
        assert hostmem.malloc_env({}, glibc, mode)["GLIBC_TUNABLES"] == NO_HUGE


def test_a_tunable_the_user_set_keeps_its_value():
    env = hostmem.malloc_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}, GOOD, "madvise")
    have = hostmem.parse(env["GLIBC_TUNABLES"])
    assert have["glibc.malloc.arena_max"] == "2" and have["glibc.malloc.hugetlb"] == "0"
    assert have["glibc.malloc.mmap_max"] == "0" and env["GLIBC_TUNABLES"].startswith("glibc.malloc.arena_max=2:")


@pytest.mark.parametrize(
    ("environ", "glibc", "mode"),
    [
        ({"GLIBC_TUNABLES": ALL}, GOOD, "madvise"),  # already set: no loop
        ({"GLIBC_TUNABLES": NO_HUGE}, GOOD, "never"),  # all this machine can use
        ({"PLANET_JAX_MALLOC": "0"}, GOOD, "madvise"),  # opted out
        ({"PLANET_JAX_HUGE_PAGES": "0"}, GOOD, "madvise"),  # the older opt-out
        ({}, (2, 25), "madvise"),  # glibc without tunables
        ({}, None, "madvise"),  # not glibc (musl, macOS)
    ],
)
def test_env_is_none_when_reexec_changes_nothing(environ, glibc, mode):
    assert hostmem.malloc_env(environ, glibc, mode) is None


def test_describe_names_what_is_set():
    assert hostmem.describe({"GLIBC_TUNABLES": ALL}) == "malloc heap reuse, huge pages"
    assert hostmem.describe({"GLIBC_TUNABLES": NO_HUGE}) == "malloc heap reuse"
    assert hostmem.describe({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == "huge pages"
    assert hostmem.describe({}) == ""


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert hostmem.thp_mode(str(path)) == "madvise"
    assert hostmem.thp_mode(str(tmp_path / "missing")) is None


SCRIPT = (
    "import os; from planet_jax.ops import hostmem; hostmem.reexec_with_malloc_settings(); "
    "print(os.environ.get('GLIBC_TUNABLES'))"
)


def _run(**env):
    drop = ("GLIBC_TUNABLES", hostmem.OPT_OUT, hostmem.OLD_OPT_OUT)
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**environ, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or hostmem.malloc_env({}, hostmem.glibc_version(), hostmem.thp_mode()) is None,
    reason="this machine's C library has no tunables",
)
def test_the_process_reexecutes_itself_once_with_the_tunables():
    here = hostmem.tunables_string()
    assert _run() == here
    assert _run(GLIBC_TUNABLES="glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2:" + here.replace(
        "glibc.malloc.arena_max=1:", ""
    )
    assert _run(PLANET_JAX_MALLOC="0") == "None"
