"""A run directory: what `train` checks and writes before it trains.

    DIR/config.json      the run's config; a resumed run must match it (`prepare_logdir`)
    DIR/replay/ROW/      each agent's episodes (`planet_jax.io.replay`)
    DIR/replay_from.json how many episodes each `--replay-from` source held at the first start
    DIR/checkpoints/     orbax checkpoints (`planet_jax.io.checkpoint`)
    DIR/metrics.jsonl, tensorboard/, curve.png, summary.json   (`planet_jax.io.logger`)

Every check raises `RunDirError` with one sentence, before anything is compiled.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence

import jax

from planet_jax import config as C
from planet_jax import sweeps
from planet_jax.config import Config
from planet_jax.io.logger import write_json
from planet_jax.io.replay import Replay


class RunDirError(RuntimeError):
    """The run directory cannot be used for this config."""


# Fields a resumed run may change: they set where the run stops or how environments are
# stepped, not what it computes.
RESUMABLE_CHANGES = ("episodes", "env_workers")


def check_logdir(logdir: str) -> None:
    """Create the run directory and prove it writable, or raise RunDirError in one sentence.

    Runs before anything is compiled, so that a path under a file, a read-only filesystem
    or a directory without permission costs the user no wait and no traceback.
    """
    reasons = {
        errno.ENOTDIR: "a part of the path is a regular file, not a directory",
        errno.EEXIST: "it is a regular file, not a directory",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the filesystem is read-only",
        errno.ENOSPC: "the disk is full",
    }
    probe = os.path.join(logdir, f".write-test-{os.getpid()}")
    try:
        os.makedirs(logdir, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        reason = reasons.get(exc.errno, exc.strerror or str(exc))
        raise RunDirError(f"--logdir {logdir} cannot be used as a run directory: {reason}.") from None


def check_disk(cfg: Config, directory: str, stored: Sequence[int]) -> None:
    """Refuse a run whose replay cannot fit: the episodes still to collect for this
    process's agents (`stored` each so far) against the free space of `directory`."""
    import shutil

    from planet_jax.io.replay import episode_bytes

    itemsize = 1 if cfg.env.obs == "pixels" else 4
    per_episode = episode_bytes(cfg.episode_length, cfg.obs_shape, itemsize, cfg.action_size)
    need = sum(max(0, cfg.train.episodes - n) for n in stored) * per_episode
    free = shutil.disk_usage(directory).free
    if need > free:
        raise RunDirError(
            f"the replay needs about {_size(need)} more ({len(stored)} agents x up to {cfg.train.episodes} "
            f"episodes of {_size(per_episode)}), but {directory} has {_size(free)} free."
        )


def check_replay_from(path: str, logdir: str) -> None:
    """Refuse, in one sentence, a `--replay-from` that is not another run's directory."""
    if not path:
        return
    if not os.path.isdir(path):
        raise RunDirError(f"--replay-from {path} is not a directory.")
    src, own = os.path.realpath(path), os.path.realpath(logdir)
    if src == own or src.startswith(own + os.sep) or own.startswith(src + os.sep):
        raise RunDirError(f"--replay-from {path} must be another run's directory, not inside --logdir {logdir}.")


def check_wandb(wanted: bool) -> None:
    """Refuse `--wandb` without the wandb package, before anything is built."""
    import importlib.util

    from planet_jax.io.tracking import MISSING_PACKAGE

    if wanted and importlib.util.find_spec("wandb") is None:
        raise RunDirError(MISSING_PACKAGE)


def _replay_root(path: str) -> str:
    """The directory holding agents' replays (`DIR/replay`) or one agent's episodes."""
    inner = os.path.join(path, "replay")
    return inner if os.path.isdir(inner) else path


def source_replays(cfg: Config, logdir: str, agents: range) -> list:
    """The read-only replays of `--replay-from` for `agents` (row indices), each agent's
    from the source's replay with its own row name, or from the source's only replay.

    The first start records how many episodes each source held (`pin_sources` writes
    `replay_from.json` in the run directory) and a resumed run reads exactly those, so that
    it trains on the same data even if the source run has since collected more. Reads only:
    a refused source leaves no trace in the run directory.
    """
    src = cfg.train.replay_from
    root = _replay_root(src)
    names = sorted(os.listdir(root))
    if any(n.startswith("episode-") for n in names):
        pick = lambda name: root  # noqa: E731  (one agent's replay: every agent trains on it)
    else:
        subdirs = [n for n in names if os.path.isdir(os.path.join(root, n))]

        def pick(name):
            if name in subdirs or len(subdirs) == 1:
                return os.path.join(root, name if name in subdirs else subdirs[0])
            held = ", ".join(subdirs) or "no replay"
            raise RunDirError(
                f"--replay-from {src} has no replay for agent {name} (it holds {held}): train the seeds it "
                "holds, or name one agent's replay directory."
            )

    record = _pin_path(logdir)
    pinned = {}
    if os.path.exists(record):
        with open(record) as f:
            pinned = json.load(f)["episodes"]
    replays = []
    for r in agents:
        name = sweeps.row_name(cfg, r)
        replay = Replay.load(pick(name), limit=pinned.get(name), readonly=True)
        if name in pinned and len(replay) < pinned[name]:
            raise RunDirError(
                f"--replay-from {src} now holds {len(replay)} intact episodes for {name}, fewer than the "
                f"{pinned[name]} this run started with."
            )
        if not replay.episodes:
            raise RunDirError(f"--replay-from {src} holds no episodes for agent {name}.")
        first = replay.episodes[0]
        if first["obs"].shape[1:] != cfg.obs_shape or first["action"].shape[1:] != (cfg.action_size,):
            raise RunDirError(
                f"--replay-from {src} holds observations {first['obs'].shape[1:]} and actions "
                f"{first['action'].shape[1:]}, but this run's task and --obs give {cfg.obs_shape} and "
                f"({cfg.action_size},)."
            )
        replays.append(replay)
    return replays


def _pin_path(logdir: str) -> str:
    process = jax.process_index()  # each process pins its own agents' sources
    return os.path.join(logdir, "replay_from.json" if process == 0 else f"replay_from-{process}.json")


def pin_sources(cfg: Config, logdir: str, agents: range, replays: Sequence) -> None:
    """Record how many episodes each agent's `--replay-from` source holds (first start only)."""
    path = _pin_path(logdir)
    if not os.path.exists(path):
        counts = {sweeps.row_name(cfg, r): len(replay) for r, replay in zip(agents, replays, strict=True)}
        write_json(path, {"path": os.path.abspath(cfg.train.replay_from), "episodes": counts})


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def prepare_logdir(cfg: Config, logdir: str) -> None:
    """Create the run directory, or check that it holds the same config (else refuse).

    Only `episodes` (so that a finished run can be extended) and `env_workers` (which
    changes how environments step, not what they return) may differ from the saved config.
    """
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = C.from_dict(json.load(f))
        paths = C.field_paths(cfg)
        same = C.replace(saved, **{name: getattr(getattr(cfg, paths[name][0]), name) for name in RESUMABLE_CHANGES})
        if same != cfg:
            lines = "\n  ".join(C.diff(saved, cfg))
            raise RunDirError(
                f"{logdir} holds a run with a different config (saved -> given):\n  {lines}\n"
                "Re-run with the saved values to resume it, or pass a new --logdir to start another run."
            )
        if saved == cfg:
            return
    write_json(path, C.to_dict(cfg))
