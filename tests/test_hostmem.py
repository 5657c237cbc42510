"""The malloc-settings re-exec of the command-line entry points (planet_jax.ops.hostmem)."""

import os
import subprocess
import sys

import pytest

from planet_jax.ops import hostmem

GOOD = (2, 36)
HUGE = "glibc.malloc.hugetlb=1"
REUSE = "glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=1099511627776"


def test_default_adds_huge_pages_where_they_can_help():
    assert hostmem.malloc_env({"PATH": "/bin"}, GOOD, "madvise") == {"PATH": "/bin", "GLIBC_TUNABLES": HUGE}


def test_reuse_adds_the_heap_tunables_and_huge_pages_where_possible():
    env = hostmem.malloc_env({"PLANET_JAX_MALLOC": "reuse"}, GOOD, "madvise")
    assert env["GLIBC_TUNABLES"] == f"{REUSE}:{HUGE}"
    for glibc, mode in [((2, 34), "madvise"), (GOOD, "always"), (GOOD, "never"), (GOOD, None)]:
        assert hostmem.malloc_env({"PLANET_JAX_MALLOC": "reuse"}, glibc, mode)["GLIBC_TUNABLES"] == REUSE


def test_a_tunable_the_user_set_keeps_its_value():
    user = {"PLANET_JAX_MALLOC": "reuse", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}
    tunables = hostmem.malloc_env(user, GOOD, "madvise")["GLIBC_TUNABLES"]
    have = hostmem.parse(tunables)
    assert have["glibc.malloc.arena_max"] == "2" and have["glibc.malloc.hugetlb"] == "0"
    assert have["glibc.malloc.mmap_max"] == "0" and tunables.startswith("glibc.malloc.arena_max=2:")


@pytest.mark.parametrize(
    ("environ", "glibc", "mode"),
    [
        ({"GLIBC_TUNABLES": HUGE}, GOOD, "madvise"),  # already set: no loop
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GOOD, "madvise"),  # the user chose
        ({"PLANET_JAX_MALLOC": "0"}, GOOD, "madvise"),  # opted out
        ({"PLANET_JAX_HUGE_PAGES": "0"}, GOOD, "madvise"),  # the older opt-out
        ({"PLANET_JAX_MALLOC": "reuse", "GLIBC_TUNABLES": f"{REUSE}:{HUGE}"}, GOOD, "madvise"),
        ({}, GOOD, "never"),  # huge pages cannot help, and the default asks for nothing else
        ({}, GOOD, "always"),
        ({"PLANET_JAX_MALLOC": "reuse"}, (2, 25), "madvise"),  # glibc without tunables
        ({"PLANET_JAX_MALLOC": "reuse"}, None, "madvise"),  # not glibc (musl, macOS)
    ],
)
def test_env_is_none_when_reexec_changes_nothing(environ, glibc, mode):
    assert hostmem.malloc_env(environ, glibc, mode) is None


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="PLANET_JAX_MALLOC must be one of huge, reuse, 0, got 'lots'"):
        hostmem.malloc_env({"PLANET_JAX_MALLOC": "lots"}, GOOD, "madvise")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tunables are glibc's (Linux)")
@pytest.mark.parametrize("module", ["planet_jax.train", "planet_jax.evaluate", "planet_jax.bench"])
def test_an_unknown_setting_stops_an_entry_point_with_one_line(module):
    env = {**os.environ, "PLANET_JAX_MALLOC": "lots"}
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: PLANET_JAX_MALLOC must be one of huge, reuse, 0, got 'lots'\n"


def test_describe_names_what_is_set():
    assert hostmem.describe({"GLIBC_TUNABLES": f"{REUSE}:{HUGE}"}) == "malloc heap reuse, huge pages"
    assert hostmem.describe({"GLIBC_TUNABLES": REUSE}) == "malloc heap reuse"
    assert hostmem.describe({"GLIBC_TUNABLES": HUGE}) == "malloc huge pages"
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
    not sys.platform.startswith("linux")
    or hostmem.malloc_env({hostmem.OPT_OUT: "reuse"}, hostmem.glibc_version(), hostmem.thp_mode()) is None,
    reason="this machine's C library has no tunables",
)
def test_the_process_reexecutes_itself_once_with_the_tunables():
    assert _run() == (hostmem.tunables_string("huge") or "None")
    assert _run(PLANET_JAX_MALLOC="reuse") == hostmem.tunables_string("reuse")
    user = _run(PLANET_JAX_MALLOC="reuse", GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert user == "glibc.malloc.arena_max=2:" + hostmem.tunables_string("reuse").replace(
        "glibc.malloc.arena_max=1:", ""
    )
    assert _run(PLANET_JAX_MALLOC="0") == "None"
