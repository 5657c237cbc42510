import os
import tempfile

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# Tests run on the CPU with deterministic float32 math.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests start `train` in subprocesses that compile the same programs again (a run,
# then its resumption; a sweep, then its single runs). JAX's persistent compilation cache,
# shared by every test process and subprocess through the environment, compiles each
# program once. An executable loaded from the cache is the one that was compiled, so
# bit-exact comparisons between runs are unaffected.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "planet_jax-test-xla-cache"))
# Every program, however fast it compiled (JAX keeps only those over 1 s by default): most
# of the fast lane's time is many small compiles (reference-equality tests run op by op),
# which a rerun then loads instead (experiments/results/README.md#test-lanes); it lives in
# this machine's temporary directory.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


# Tests marked `compiled_text` read lowered or compiled program text (a library call in the
# optimised HLO, a Triton call, the absence of a loop), which a new jaxlib may spell
# differently without anything being wrong. They run with the jaxlib they were checked
# against; with another they are skipped, saying so, so that bumping jaxlib means checking
# them and this version on purpose rather than a red suite.
COMPILED_TEXT_JAXLIB = "0.10.2"


def pytest_collection_modifyitems(config, items):
    _skip_compiled_text_on_other_jaxlibs(items)
    # The end-to-end tests first, so that the last minutes are many short tests shared out
    # between the workers rather than one long one on a single worker. Stable: the rest keep
    # their order.
    items.sort(key=lambda item: "slow" not in item.keywords)


def _skip_compiled_text_on_other_jaxlibs(items):
    import jaxlib

    if jaxlib.__version__ == COMPILED_TEXT_JAXLIB:
        return
    skip = pytest.mark.skip(
        reason=f"compiled-text assertions were checked on jaxlib {COMPILED_TEXT_JAXLIB}, this is {jaxlib.__version__}: "
        "re-check them and update COMPILED_TEXT_JAXLIB in tests/conftest.py"
    )
    for item in items:
        if "compiled_text" in item.keywords:
            item.add_marker(skip)
