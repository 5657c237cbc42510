"""Stop a Kaixhin/PlaNet run once its metrics hold N test phases.

    python experiments/kaixhin/stop_after.py RUN_DIR N PID [--every SECONDS]

Kaixhin's main.py has no budget below its --episodes; a run stopped right after the
metrics of its N-th test phase are saved equals a run that ended there. Each test phase
plots `test_rewards.html` (our stand-in plotly appends it, with the time, to
RUN_DIR/plots.jsonl) and then saves results/run/metrics.pth; once that file is newer than
the N-th plot, PID gets SIGTERM. Exits when PID has gone. Looks every 5 s (`--every`).
"""

import argparse
import json
import os
import signal
import time


def test_plot_times(run_dir: str) -> list[float]:
    try:
        with open(os.path.join(run_dir, "plots.jsonl")) as f:
            plots = [json.loads(line) for line in f if line.strip()]
    except (FileNotFoundError, json.JSONDecodeError):  # not started, or a line half written
        return []
    return [p["time"] for p in plots if p["filename"].endswith("/test_rewards.html")]


def alive(pid: int) -> bool:
    """Whether `pid` still runs: a process that has exited but whose parent has not yet
    reaped it (a zombie, state Z in /proc) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("phases", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("--every", type=float, default=5.0)
    a = p.parse_args()
    metrics = os.path.join(a.run_dir, "results", "run", "metrics.pth")
    while alive(a.pid):
        times = test_plot_times(a.run_dir)
        if len(times) >= a.phases and os.path.exists(metrics) and os.path.getmtime(metrics) >= times[a.phases - 1]:
            time.sleep(2)  # let torch.save finish the file it has opened
            os.kill(a.pid, signal.SIGTERM)
            print(f"stopped {a.run_dir} after test phase {a.phases}", flush=True)
            return
        time.sleep(a.every)


if __name__ == "__main__":
    main()
