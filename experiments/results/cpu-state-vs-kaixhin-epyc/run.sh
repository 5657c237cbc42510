#!/usr/bin/env bash
# More seeds of cartpole-swingup from states beside Kaixhin/PlaNet, at the settings of
# cpu-state-vs-kaixhin: planet_jax seeds 3, 4, 5 in one program on core 1, Kaixhin/PlaNet
# seeds 3 and 4 one after another on core 0, both started together, 30 episodes each.
#   bash experiments/results/cpu-state-vs-kaixhin-epyc/run.sh OUT_DIR
# Needs Kaixhin/PlaNet set up by experiments/kaixhin/setup.sh (KX, default /work/kx);
# PYTHON: planet_jax's interpreter (default .venv/bin/python, from the repository root).
set -euo pipefail
OUT=$1 PY=${PYTHON:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
KAIXHIN=$HERE/../../kaixhin
mkdir -p "$OUT"
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 1 \
  "$PY" -m planet_jax.train --task cartpole-swingup --preset paper --obs state \
  --deter-size 200 --stoch-size 30 --hidden-size 200 --state-units 300 --state-layers 2 \
  --reward-layers 2 --reward-units 200 --horizon 12 --num-iterations 6 --num-candidates 300 \
  --num-elites 30 --batch-size 50 --chunk-length 50 --train-steps 100 --updates-per-call 50 \
  --seed-episodes 5 --test-every 5 --test-episodes 5 --num-seeds 3 --seed 3 --episodes 30 \
  --no-progress --logdir "$OUT/planet_jax" > "$OUT/planet_jax.log" 2>&1 &
ours=$!
for seed in 3 4; do
  # Kaixhin's run has no episode budget below 100: stop it once metrics.pth holds its
  # fifth test phase (episode 30), which equals a run that ended there.
  bash "$KAIXHIN/run.sh" "$OUT/kaixhin-seed$seed" cartpole-swingup 8 "$seed" 0 > "$OUT/kaixhin-seed$seed.log" 2>&1 &
  theirs=$!
  "$PY" "$KAIXHIN/stop_after.py" "$OUT/kaixhin-seed$seed" 5 "$theirs"
  wait "$theirs" || true
done
wait "$ours"
