#!/usr/bin/env bash
# Start-up of a resumed paper-size pixel run, without and with JAX's persistent compilation
# cache. One core, one thread. Usage: bash run.sh OUT [CORE]
# 1. a short paper-preset run (2 episodes) fills a fresh cache directory and checkpoints;
# 2. two copies of its run directory are resumed to 3 episodes, one with --no-compile-cache,
#    one with the cache; start-up = launch to the first record the resumed run writes.
set -euo pipefail
OUT=$(realpath -m "$1"); CORE=${2:-1}
mkdir -p "$OUT"
export PLANET_JAX_CACHE="$OUT/cache" MUJOCO_GL=egl
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PY=${PY:-python}
ARGS=(--task cheetah-run --preset paper --obs pixels --seed-episodes 1 --train-steps 10
      --episode-steps 200 --test-every 1000 --test-episodes 1 --checkpoint-every 1 --no-progress)
run() {  # name, logdir, extra args...
  local name=$1 dir=$2; shift 2
  local t0; t0=$(date +%s.%N)
  taskset -c "$CORE" "$PY" -m planet_jax.train "${ARGS[@]}" --logdir "$dir" "$@" \
    > "$OUT/$name.log" 2>&1
  local t1; t1=$(date +%s.%N)
  "$PY" - "$name" "$dir" "$t0" "$t1" >> "$OUT/startup.jsonl" <<'PYEOF'
import json, sys
name, logdir, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
recs = [json.loads(l) for l in open(f"{logdir}/metrics.jsonl")]
new = [r for r in recs if r["time"] > t0]
first = min(new, key=lambda r: r["time"])
print(json.dumps({"run": name, "launch": t0, "wall_s": round(t1 - t0, 2),
                  "startup_s": round(first["time"] - t0, 2), "first_record": first.get("kind")}))
PYEOF
}
run first "$OUT/base" --episodes 2
cp -a "$OUT/base" "$OUT/resume-nocache"; cp -a "$OUT/base" "$OUT/resume-cache"
du -sh "$OUT/cache" > "$OUT/cache-size.txt"
run resume-nocache "$OUT/resume-nocache" --episodes 3 --no-compile-cache
run resume-cache "$OUT/resume-cache" --episodes 3
run resume-nocache-2 "$OUT/resume-nocache" --episodes 4 --no-compile-cache
run resume-cache-2 "$OUT/resume-cache" --episodes 4
echo done > "$OUT/DONE"
