import os
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
# Tests run on the CPU with deterministic float32 math.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests start `train` in subprocesses that compile the same programs again (a run,
# then its resumption; a sweep, then its single runs). JAX's persistent compilation cache,
# shared by every test process and subprocess through the environment, compiles each
# program once. An executable loaded from the cache is the one that was compiled, so
# bit-exact comparisons between runs are unaffected.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "planet_jax-test-xla-cache"))
