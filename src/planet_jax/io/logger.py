"""What a run writes: JSON-lines metrics, TensorBoard events, learning curves and videos.

`MetricsLog` appends one JSON record per line to `metrics.jsonl` (flushed each time, so a
crash loses at most the line being written) and mirrors scalars to TensorBoard. Every
record has a `kind` (`train_episode`, `update`, `test`, ...) and the `episode` count it
belongs to; a resumed run first drops the records past its checkpoint (`truncate`), so
the history reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence

import numpy as np

from planet_jax.io.tasks import PAPER_SCORES_1000


class MetricsLog:
    """Append-only metrics with TensorBoard mirroring, and any `mirrors` (objects with
    `log(record)` and `close()`, such as `tracking.Wandb`) given each record too."""

    def __init__(self, logdir: str, *, tensorboard: bool = True, purge_step: int | None = None, mirrors=()):
        self.path = os.path.join(logdir, "metrics.jsonl")
        self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the run)
        self._tb = None
        self.mirrors = list(mirrors)
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step drops events a crashed run wrote past the checkpoint we resume from.
            self._tb = SummaryWriter(os.path.join(logdir, "tensorboard"), purge_step=purge_step)

    def write(self, record: dict, *, step: int | None = None) -> None:
        """Append one record, stamped with `time` (Unix seconds: test return against wall clock)."""
        record = {**{k: _plain(v) for k, v in record.items()}, "time": time.time()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None and step is not None:
            for tag, value in scalar_tags(record).items():
                self._tb.add_scalar(tag, value, step)
        for mirror in self.mirrors:
            mirror.log(record)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        for mirror in self.mirrors:
            mirror.close()

    @staticmethod
    def read(logdir: str) -> list[dict]:
        path = os.path.join(logdir, "metrics.jsonl")
        if not os.path.exists(path):
            return []
        records = []
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut short by a crash, and nothing valid after it
        return records

    @staticmethod
    def truncate(logdir: str, episodes: int) -> None:
        """Keep only the records of the first `episodes` episodes (atomically rewritten)."""
        records = [r for r in MetricsLog.read(logdir) if r.get("episode", 0) <= episodes]
        path = os.path.join(logdir, "metrics.jsonl")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)


def scalar_tags(record: dict) -> dict[str, float]:
    """A metrics record's numbers under their tags: `KIND/KEY`, or `KIND/seedS/KEY`
    (`KIND/COMBO/seedS/KEY` within a sweep) for one agent's record."""
    prefix = record.get("kind", "metrics")
    out = {}
    for key, value in record.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or key in ("episode", "seed", "row", "time"):
            continue
        if "seed" not in record:
            out[f"{prefix}/{key}"] = value
        else:
            agent = f"{record['combo']}/seed{record['seed']}" if "combo" in record else f"seed{record['seed']}"
            out[f"{prefix}/{agent}/{key}"] = value
    return out


def write_json(path: str, obj) -> None:
    """Write `obj` as indented JSON to a temporary name, then rename: a reader (or a crash)
    never sees a half-written file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def learning_summary(records: Iterable[dict]) -> dict:
    """What a run's metrics say about learning: its first and last test phases against random actions.

    `first_test` and `last_test` are `(episode, mean, s.e.)` of a phase's test return over
    agents (seeds, sweep rows), or None without a test phase; `random_return` is the mean
    return of the training episodes that took uniformly random actions (the seed episodes),
    or None where the run collected none (a replay source, or records from before they
    were marked).
    """
    records = list(records)
    by_phase: dict[int, list[float]] = {}
    for r in records:
        if r.get("kind") == "test":
            by_phase.setdefault(r["episode"], []).append(r["return"])
    phases = sorted(by_phase)
    randoms = [r["return"] for r in records if r.get("kind") == "train_episode" and r.get("policy") == "random"]

    def phase(episode):
        return (episode, *mean_and_stderr(by_phase[episode]))

    return {
        "first_test": phase(phases[0]) if phases else None,
        "last_test": phase(phases[-1]) if phases else None,
        "random_return": float(np.mean(randoms)) if randoms else None,
        "random_episodes": len(randoms),
    }


def plot_curves(records: Iterable[dict], task: str, path: str, title: str = "") -> None:
    """Test return against episodes and environment steps, per seed and mean +- s.e.

    The paper's 1000-episode score and the seed episodes' random-action return are drawn
    as reference lines where they exist.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    tests = [r for r in records if r.get("kind") == "test"]
    trains = [r for r in records if r.get("kind") == "train_episode"]
    random_return = learning_summary(records)["random_return"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    combos = sorted({r.get("combo", "") for r in tests + trains})
    for ax, xkey, xlabel in ((axes[0], "episode", "episodes"), (axes[1], "env_steps", "environment steps")):
        for combo in combos:
            for name, all_rows, style in (("train", trains, ":"), ("test", tests, "-")):
                rows = [r for r in all_rows if r.get("combo", "") == combo]
                seeds = sorted({r["seed"] for r in rows})
                for s in seeds:
                    pts = [(r[xkey], r["return"]) for r in rows if r["seed"] == s]
                    if pts and len(seeds) > 1:
                        ax.plot(*zip(*pts), style, alpha=0.3, lw=1)
                by_x: dict[float, list[float]] = {}
                for r in rows:
                    by_x.setdefault(r[xkey], []).append(r["return"])
                if by_x:
                    xs = sorted(by_x)
                    stats = [mean_and_stderr(by_x[x]) for x in xs]
                    mean = np.array([m for m, _ in stats])
                    se = np.array([e for _, e in stats])
                    label = f"{combo + ' ' if combo else ''}{name} (mean of {len(seeds)} seed{'s' * (len(seeds) > 1)})"
                    ax.plot(xs, mean, style, lw=2, label=label)
                    ax.fill_between(xs, mean - se, mean + se, alpha=0.2)
        if task in PAPER_SCORES_1000:
            ax.axhline(PAPER_SCORES_1000[task], color="k", ls="--", lw=1, label="PlaNet paper, 1000 episodes")
        if random_return is not None:
            ax.axhline(random_return, color="0.5", ls="-.", lw=1, label="random actions (seed episodes)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or task)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_video(path: str, frames: np.ndarray, fps: int = 20, scale: int = 2) -> str:
    """uint8 frames [T, H, W, 3] -> an MP4 (H.264 via imageio-ffmpeg), upscaled `scale`x.

    Returns the path written. Without imageio-ffmpeg (an install without this package's
    dependencies), the frames are kept losslessly in `<path without .mp4>.npz` instead,
    with a warning, rather than handing them to whichever imageio plugin answers.
    """
    import importlib.util
    import warnings

    frames = np.asarray(frames, np.uint8)
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        fallback = os.path.splitext(path)[0] + ".npz"
        with open(fallback + ".tmp", "wb") as f:
            np.savez_compressed(f, frames=frames, fps=fps)
        os.replace(fallback + ".tmp", fallback)
        warnings.warn(
            f"imageio-ffmpeg is not installed, so no MP4: the frames of {os.path.basename(path)} are in {fallback} "
            "(`pip install imageio-ffmpeg` for videos)",
            RuntimeWarning,
            stacklevel=2,
        )
        return fallback
    import imageio.v2 as imageio

    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    # H.264 wants even sizes; macro_block_size=1 keeps our exact size.
    with warnings.catch_warnings():
        # imageio-ffmpeg starts ffmpeg with fork; the child only execs ffmpeg, so the
        # "fork in a multithreaded process" warning does not apply.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        root, ext = os.path.splitext(path)
        tmp = f"{root}.tmp{ext}"  # renamed when complete, like every file a run writes
        with imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, quality=8
        ) as writer:
            for frame in frames:
                writer.append_data(frame)
        os.replace(tmp, path)
    return path
