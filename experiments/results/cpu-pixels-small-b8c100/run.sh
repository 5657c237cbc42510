#!/usr/bin/env bash
# small-preset pixel runs at B=8, C=100 (twice the updates of the earlier B=16, C=50 on the
# same frames per episode), 1 free nat; usage: run.sh CORE TASK EPISODES
set -euo pipefail
CORE=$1 TASK=$2 EP=$3
NAME=pix-$TASK-b8c100
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" MUJOCO_GL=egl
date -u +%FT%TZ > runs/$NAME.start
git rev-parse --short HEAD >> runs/$NAME.start
taskset -c $CORE .venv/bin/python -m planet_jax.train --task $TASK --preset small --obs pixels \
    --num-seeds 2 --free-nats 1 --batch-size 8 --train-steps 100 --updates-per-call 25 \
    --episodes $EP --no-progress --logdir runs/$NAME >> runs/$NAME.log 2>&1
date -u +%FT%TZ > runs/$NAME.end
