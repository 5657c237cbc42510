#!/usr/bin/env bash
# small-preset pixel run on both cores of the 2-core machine (XLA's default threading, as a
# laptop user runs it), B=8, C=100, 1 free nat, 2 seeds in one program; usage: run.sh TASK EPISODES
set -euo pipefail
TASK=$1 EP=$2
NAME=pix2-$TASK
export MUJOCO_GL=egl
date -u +%FT%TZ > runs/$NAME.start
git rev-parse --short HEAD >> runs/$NAME.start
.venv/bin/python -m planet_jax.train --task $TASK --preset small --obs pixels \
    --num-seeds 2 --free-nats 1 --batch-size 8 --train-steps 100 --updates-per-call 25 \
    --episodes $EP --no-progress --logdir runs/$NAME >> runs/$NAME.log 2>&1
date -u +%FT%TZ > runs/$NAME.end
