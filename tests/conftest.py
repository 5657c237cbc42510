import os

os.environ.setdefault("MUJOCO_GL", "egl")
# Tests run on the CPU with deterministic float32 math.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
