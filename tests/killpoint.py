"""Run `planet_jax.train` and SIGKILL it at a point of its progress, not of the clock.

    python tests/killpoint.py POINT N [train arguments ...]

POINT is where the process kills itself (signal 9: no handler, no cleanup, as the kernel's
OOM killer or a pre-empted host would):
  - `update`:     right after dispatching its N-th update call (counted from this process's
                  start), while XLA is still computing it;
  - `checkpoint`: while the checkpoint of step N sits complete in orbax's temporary
                  directory, just before the rename that would commit it;
  - `metrics`:    right after `metrics.jsonl` reaches N lines (a resumed run first truncates
                  it to its checkpoint, so N counts the whole history).
The same points are hit on a fast and on a slow machine. Without a kill (the run finished
first) the exit code is 0, as for a plain run.
"""

import dataclasses
import os
import signal
import sys


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    point, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import planet_jax.train as train
    from planet_jax.io.logger import MetricsLog

    if point == "update":
        init, calls = train.Trainer.__init__, [0]

        def patched_init(self, *a, **k):
            init(self, *a, **k)
            update = self.programs.update

            def update_then_die(*a, **k):
                out = update(*a, **k)  # dispatched asynchronously: the call is still running
                calls[0] += 1
                if calls[0] == n:
                    _die()
                return out

            self.programs = dataclasses.replace(self.programs, update=update_then_die)

        train.Trainer.__init__ = patched_init
    elif point == "checkpoint":
        rename = os.rename

        def rename_or_die(src, dst, *a, **k):
            if "orbax-checkpoint-tmp" in os.fspath(src) and os.path.basename(os.fspath(dst)) == str(n):
                _die()
            return rename(src, dst, *a, **k)

        os.rename = rename_or_die
    elif point == "metrics":
        write = MetricsLog.write

        def write_then_die(self, *a, **k):
            write(self, *a, **k)
            with open(self.path) as f:
                if sum(1 for _ in f) >= n:
                    _die()

        MetricsLog.write = write_then_die
    else:
        raise SystemExit(f"unknown kill point {point!r}: update, checkpoint or metrics")
    return train.main(args)


if __name__ == "__main__":
    sys.exit(main())
