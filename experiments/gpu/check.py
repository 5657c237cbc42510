"""Device check before the GPU measurements (experiments/gpu/run.sh, stage 0).

Prints the library versions and where they were loaded from, checks that JAX runs on
$WANT_BACKEND (when set), that MuJoCo renders through EGL, and that a debug-size update
and a checkpoint save/restore work with these library versions. Exits non-zero otherwise.
"""

import importlib
import os
import tempfile
import time

for name in ("jax", "jaxlib", "flax", "optax", "chex", "orbax.checkpoint", "distrax", "mujoco", "dm_control", "numpy"):
    mod = importlib.import_module(name)
    print(f"{name} {getattr(mod, '__version__', '?')} {os.path.dirname(mod.__file__)}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

print("devices", jax.devices())
want = os.environ.get("WANT_BACKEND", "")
assert not want or jax.default_backend() == want, f"JAX runs on {jax.default_backend()}, not {want}"
x = jnp.ones((4096, 4096))
print("matmul on", (x @ x).devices())

from planet_jax import bench  # noqa: E402
from planet_jax import config as C  # noqa: E402
from planet_jax.io import checkpoint  # noqa: E402
from planet_jax.io.envs import make_env  # noqa: E402

env = make_env(C.preset("paper", "cheetah-run"), 0)
env.reset(0)
t = time.perf_counter()
for _ in range(20):
    env.render()
print(f"EGL render ok: {1e3 * (time.perf_counter() - t) / 20:.1f} ms per 64x64 frame")

args = bench.parse_args(["update", "--preset", "debug", "--batch", "2", "--repeats", "1"])
print("debug update ok:", [f"{r.name} {r.median_s:.3f} s" for r in bench.bench_update(args)])

from planet_jax.model.state import create_train_state  # noqa: E402

cfg = C.preset("debug", "cartpole-swingup")
state = create_train_state(jax.random.key(0), cfg=cfg)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = checkpoint.Checkpointer(tmp)
    ckpt.save(1, state, {"episodes": 1})
    restored, meta, step = ckpt.restore(jax.eval_shape(lambda: state))
    ckpt.close()


def equal(a, b) -> bool:
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    return bool((a == b).all())


same = jax.tree.all(jax.tree.map(equal, state, restored))
assert same and meta == {"episodes": 1} and step == 1, (same, meta, step)
print("checkpoint round trip ok")
