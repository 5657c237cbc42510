#!/usr/bin/env bash
# Kaixhin/PlaNet beside planet_jax, for the side-by-side runs of experiments/results/cpu-state-vs-kaixhin.
#   bash experiments/kaixhin/setup.sh GIT_DIR [DEST]
# GIT_DIR: a clone (or bare mirror) of github.com/Kaixhin/PlaNet; DEST (default
# /work/kx): where its code is unpacked (DEST/code) and its virtual environment goes
# (DEST/.venv: PyTorch 2.13 CPU, numpy, dm_control 1.0.50). None of its code enters planet_jax.
set -euo pipefail
GIT_DIR=$1 DEST=${2:-/work/kx}
mkdir -p "$DEST/code"
git --git-dir="$GIT_DIR" archive HEAD | tar -x -C "$DEST/code"
git --git-dir="$GIT_DIR" rev-parse HEAD > "$DEST/code/COMMIT"
python3 -m venv "$DEST/.venv"
"$DEST/.venv/bin/pip" install --quiet torch==2.13.0 numpy==2.4.6 dm_control==1.0.50 mujoco==3.17.0 tqdm
echo "Kaixhin/PlaNet $(cat "$DEST/code/COMMIT") in $DEST/code, venv $DEST/.venv"
