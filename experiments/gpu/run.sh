#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (the `device` tool), from the repository root, carrying the
# .whl/ and .gl/ folders that experiments/gpu/fetch.sh filled here:
#
#   run(command="bash experiments/gpu/run.sh bench", carry=[".whl", ".gl"], timeout_s=600)
#   run(command="bash experiments/gpu/run.sh train cartpole-swingup 4 60", carry=[".whl", ".gl"], timeout_s=600)
#
# Every call: installs the wheels (into /tmp/site) and GL libraries, checks that JAX runs
# on the GPU and that MuJoCo renders through EGL (and stops if not), then
#   bench                       `bench all` at paper sizes -> $OUT/bench.json, bench.txt
#   train TASK SEEDS EPISODES   a pixel run of the paper preset with SEEDS seeds in one
#                               program, stopped cleanly (SIGTERM -> checkpoint) before the
#                               command's limit -> $OUT/metrics.jsonl, config.json,
#                               summary.json, curve.png, train.txt
# Results go under experiments/results/ with this command and the device it printed.
set -uo pipefail
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD/src" MUJOCO_GL=egl PYTHONUNBUFFERED=1

python3 - <<'PY' 2>&1 | tee "$OUT/check.txt"
import time
import jax
import jax.numpy as jnp
print("jax", jax.__version__, "devices", jax.devices())
assert jax.default_backend() == "gpu", "JAX does not see the GPU"
x = jnp.ones((4096, 4096))
print("matmul on", (x @ x).devices())
from planet_jax import config as C
from planet_jax.envs import make_env
env = make_env(C.preset("paper", "cheetah-run"), 0)
env.reset(0)
start = time.perf_counter()
for _ in range(20):
    env.render()
print(f"EGL render ok: {1e3 * (time.perf_counter() - start) / 20:.1f} ms per 64x64 frame")
PY
[ "${PIPESTATUS[0]}" = 0 ] || { echo "environment check failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee -a "$OUT/check.txt"

case "${1:-bench}" in
  bench)
    python3 -m planet_jax.bench all --preset paper --task cheetah-run --batch 16 50 --envs 1 4 16 \
      --seeds 1 2 4 8 --repeats 5 --long-repeats 1 --json "$OUT/bench.json" 2>&1 \
      | grep -v "settotalmass" | tee "$OUT/bench.txt"
    ;;
  train)
    task="${2:?task}" seeds="${3:-4}" episodes="${4:-100}"
    dir="/tmp/runs/gpu-$task"
    # SIGTERM at 500 s: the run finishes its episode, saves and exits; re-running on a warm
    # machine resumes it.
    timeout --signal=TERM 500 python3 -m planet_jax.train --task "$task" --num-seeds "$seeds" \
      --episodes "$episodes" --logdir "$dir" --no-progress 2>&1 | grep -v "settotalmass" | tee "$OUT/train.txt"
    cp "$dir"/metrics.jsonl "$dir"/config.json "$dir"/summary.json "$dir"/curve.png "$OUT"/ 2>/dev/null
    ;;
  *)
    echo "usage: run.sh bench | train TASK SEEDS EPISODES"; exit 2 ;;
esac
