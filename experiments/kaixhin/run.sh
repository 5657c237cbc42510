#!/usr/bin/env bash
# One seed of Kaixhin/PlaNet in --symbolic-env mode at the settings planet_jax is compared at.
#   bash experiments/kaixhin/run.sh RUN_DIR TASK ACTION_REPEAT SEED [CORE]
# Runs in RUN_DIR (results land in RUN_DIR/results/run/metrics.pth, and the stand-in plotly
# appends each plot call, with its time, to RUN_DIR/plots.jsonl); pinned to CPU CORE with
# one thread when CORE is given. Episodes are 100: stop it at the budget compared
# (experiments/kaixhin/README.md).
set -euo pipefail
RUN_DIR=$1 TASK=$2 R=$3 SEED=$4 CORE=${5:-}
KX=${KX:-/work/kx}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$RUN_DIR" && cp "$KX"/code/*.py "$RUN_DIR"/ && cd "$RUN_DIR"
export PYTHONPATH="$HERE/stubs" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PIN=()
[ -n "$CORE" ] && PIN=(taskset -c "$CORE")
date +%s > start
exec "${PIN[@]}" "$KX/.venv/bin/python" main.py --id run --disable-cuda --env "$TASK" --symbolic-env \
  --action-repeat "$R" --seed "$SEED" --episodes 100 --seed-episodes 5 --collect-interval 100 \
  --batch-size 50 --chunk-size 50 --embedding-size 300 --hidden-size 200 --belief-size 200 \
  --state-size 30 --planning-horizon 12 --optimisation-iters 6 --candidates 300 --top-candidates 30 \
  --test-interval 5 --test-episodes 5 --checkpoint-interval 100000
