#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (the `device` tool), from the repository root, carrying the
# .whl/ and .gl/ folders that experiments/gpu/fetch.sh filled here. One call does a whole
# session's measurements, most important first, each stage inside a shared deadline so
# that the call ends before the tool's limit and every stage that ran leaves its files:
#
#   run(command="bash experiments/gpu/run.sh 540", carry=[".whl", ".gl"], timeout_s=600)
#
#   0. install the wheels (into /tmp/site) and GL libraries; print versions and the GPU;
#      check that JAX runs on the GPU, that MuJoCo renders through EGL, and that a debug
#      update and a checkpoint round trip work with the pinned flax/optax/chex/orbax
#      (.whl/pinned; without them, the image's own versions, if the pinned ones fail)
#   1. options (experiments/gpu/xla_options.py): `act` at paper settings with XLA options
#      that change how GEMMs are tiled, compiled side by side and timed in turns
#   1b. breakdown (experiments/gpu/breakdown.py): `act` at paper settings in each rollout
#      form (XLA with each reward pass; the fused Pallas kernel with a few block sizes),
#      1 and 4 envs, in turns; its parts (posterior update, search, H=1 I=1, a no-op);
#      each form's optimised HLO and its count of kernels
#   2. planner: `bench planner` at paper settings, 1/4/16 envs, with the form that was
#      fastest for one environment in stage 1
#   3. sweep: 1 and 4 agents vmapped in one program, update and acting step
#   4. train: a short pixel run of the paper preset, 2 seeds in one program, stopped by
#      SIGTERM (finishes the episode, checkpoints) before the deadline
#   5. evaluate: restore that checkpoint, 2 noise-free episodes, the frames
#   6. if time is left: `bench update` at paper size (B=50), the planner and RSSM tests
#
# $OUT/results.tgz holds session.txt (everything printed), check.txt, xla-options.json/txt,
# breakdown.json/txt
# and hlo/, planner.json/txt, sweep.json/txt,
# update*.json/txt, train.txt with the run's metrics/summary/config, evaluate.txt and its
# video, tests.txt. Commit them under experiments/results/gpu-*/ with this command.
# DRYRUN=1 runs the same stages at debug sizes on any backend (to test this script).
# ONLY=planner,update,tests runs only the stages named (the planner then as configured).
set -uo pipefail
budget="${1:-540}"
start=$SECONDS
OUT="${OUT:-/tmp/out}"
PY="${PY:-python3}"
# The tool returns at most 8 files: everything goes to $W, packed into $OUT/results.tgz
# after every stage (so a stage killed at the limit still leaves the earlier ones).
W="${W:-/tmp/gpu-results}"
mkdir -p "$OUT" "$W"
pack() { tar czf "$OUT/results.tgz" -C "$W" . 2>/dev/null; }
exec > >(tee "$W/session.txt") 2>&1
left() { echo $((budget - (SECONDS - start))); }
# stage NAME SECONDS CMD...: run CMD with at most SECONDS (less if the deadline is nearer).
stage() {
  local name="$1" want="$2"
  shift 2
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then
    echo "== $name: not in ONLY=$ONLY"
    return 0
  fi
  local have
  have=$(($(left) - 10))
  ((have < want)) && want=$have
  if ((want < 20)); then
    echo "== $name: skipped ($(left) s left)"
    return 1
  fi
  echo "== $name: up to $want s ($(date -u +%T))"
  timeout --signal=TERM --kill-after="${KILL_AFTER:-15}" "$want" "$@"
  local rc=$?
  echo "== $name: rc $rc after $((SECONDS - start)) s"
  pack
  return $rc
}

if [ "${DRYRUN:-0}" = 1 ]; then
  preset=debug want_backend="" envs="1 4" batches="4" seeds="1 2"
else
  preset=paper want_backend=gpu envs="1 4 16" batches="50" seeds="1 4"
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pinned .whl/pinned/*.whl \
    || echo "pinned wheel install failed"
  export PYTHONPATH="/tmp/pinned:/tmp/site:$PWD/src"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONUNBUFFERED=1 WANT_BACKEND="$want_backend"

# A failure with the pinned flax/optax/chex/orbax falls back to the image's own versions.
if ! stage check 150 "$PY" experiments/gpu/check.py 2>&1 | tee "$W/check.txt"; then
  [ "${DRYRUN:-0}" = 1 ] && exit 1
  echo "== check failed with the pinned libraries: retrying with the image's own"
  export PYTHONPATH="/tmp/site:$PWD/src"
  stage check-image 120 "$PY" experiments/gpu/check.py 2>&1 | tee "$W/check-image.txt" \
    || { echo "environment check failed"; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv 2>&1 | tee -a "$W/check.txt"

bench() { stage "$1" "$2" "$PY" -m planet_jax.bench "${@:3}" 2>&1 | grep -v settotalmass | tee "$W/$1.txt"; }
# `act` under XLA options that change GEMM tiling (exhaustive autotuning, Triton for every
# GEMM, cuBLAS only) and two matmul precisions, compiled side by side in one process and
# timed in turns; no new compilation after 210 s.
stage options 300 env PRESET=$preset "$PY" experiments/gpu/xla_options.py --repeats 10 --deadline 210 \
  --json "$W/xla-options.json" 2>&1 | grep -v settotalmass | tee "$W/xla-options.txt"
# Each reward pass, 1 and 4 envs, in turns; the parts; the HLO kernel counts.
stage breakdown 260 env PRESET=$preset "$PY" experiments/gpu/breakdown.py --repeats 10 --json "$W/breakdown.json" \
  --hlo-dir "$W/hlo" 2>&1 | grep -v settotalmass | tee "$W/breakdown.txt"
# The headline figure with the fastest form for one environment found above.
best=$("$PY" experiments/gpu/breakdown.py --pick "$W/breakdown.json" 2>/dev/null)
echo "fastest form for one environment: ${best:-none found (the planner runs as configured)}"
# shellcheck disable=SC2086
bench planner 120 planner --preset $preset --envs $envs --repeats 10 $best --json "$W/planner.json"
# shellcheck disable=SC2086
bench sweep 100 sweep --preset $preset --seeds $seeds --updates-per-call 1 --repeats 5 --json "$W/sweep.json"

run_dir=/tmp/runs/gpu-cartpole-swingup
if [ "${DRYRUN:-0}" = 1 ]; then
  train_args=(--preset debug --episodes 4)
else
  train_args=(--episodes 100)
fi
KILL_AFTER=60 stage train 150 "$PY" -m planet_jax.train --task cartpole-swingup --num-seeds 2 "${train_args[@]}" \
  --logdir "$run_dir" --no-progress 2>&1 | grep -v settotalmass | tee "$W/train.txt"
cp "$run_dir"/*.json* "$run_dir"/*.png "$W"/ 2>/dev/null
ls -R "$run_dir" >>"$W/train.txt" 2>&1

stage evaluate 60 "$PY" -m planet_jax.evaluate --logdir "$run_dir" --episodes 2 --videos 1 2>&1 \
  | grep -v settotalmass | tee "$W/evaluate.txt"
cp -r "$run_dir"/eval "$W"/ 2>/dev/null
# shellcheck disable=SC2086
bench update 60 update --preset $preset --batch $batches --repeats 5 --json "$W/update.json"
# The planner and RSSM tests on the GPU (conftest pins the CPU unless JAX_PLATFORMS is set).
JAX_PLATFORMS="" stage tests 200 "$PY" -m pytest -q -p no:cacheprovider -n 0 tests/test_rollout_kernel.py tests/test_planner.py tests/test_rssm.py \
  2>&1 | tail -15 | tee "$W/tests.txt"
pack
echo "== done after $((SECONDS - start)) s"
for f in "$W"/xla-options.txt "$W"/breakdown.txt "$W"/planner*.txt "$W"/update*.txt "$W"/sweep.txt; do
  echo "-- $f"
  grep -E "ms|GFLOP|s/update| s " "$f" | head -12
done
