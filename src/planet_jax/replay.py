"""Host-side episode replay: whole episodes in numpy, chunks sampled inside episodes.

An episode is a dict of arrays with a leading time axis of T + 1 entries:
  obs     [T+1, *obs_shape]  uint8 frames (or float32 states); obs[0] is the reset frame
  action  [T+1, A] float32   action[t] is the action that led to obs[t]; action[0] = 0
  reward  [T+1] float32      reward[t] came with obs[t]; reward[0] = 0
so a chunk of length L is simply a slice [s, s + L) of every array, and the model's
step t consumes (action[t], obs[t]) and predicts reward[t].

Episodes are kept as separate arrays (never concatenated, so adding one copies nothing
else), and with a directory each new episode is written once as its own `.npz` file
(written to a temporary name, then renamed, so a crash never leaves a half-written
episode under a real name). `load` reads them back in order and reports damaged files.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Mapping

import numpy as np

log = logging.getLogger(__name__)

KEYS = ("obs", "action", "reward")
_FILE = re.compile(r"^episode-(\d{6})\.npz$")


class ReplayError(RuntimeError):
    """The replay store could not be read or written."""


class Replay:
    """Episodes of one agent. `directory=None` keeps them in memory only."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = os.fspath(directory) if directory is not None else None
        self.episodes: list[dict[str, np.ndarray]] = []
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_steps(self) -> int:
        """Agent steps stored (transitions, not counting each episode's reset frame)."""
        return sum(len(ep["reward"]) - 1 for ep in self.episodes)

    def add(self, episode: Mapping[str, np.ndarray]) -> int:
        """Store an episode (and write it if the store has a directory); returns its index."""
        episode = {k: np.asarray(episode[k]) for k in KEYS}
        length = len(episode["reward"])
        if any(len(v) != length for v in episode.values()) or length < 2:
            shapes = {k: v.shape for k, v in episode.items()}
            raise ReplayError(f"an episode needs equal time axes of at least 2 entries, got {shapes}.")
        index = len(self.episodes)
        if self.directory is not None:
            self._write(index, episode)
        self.episodes.append(episode)
        return index

    def _write(self, index: int, episode: dict[str, np.ndarray]) -> None:
        path = os.path.join(self.directory, f"episode-{index:06d}.npz")
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **episode)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise ReplayError(f"could not write episode {index} to {path}: {exc}") from exc

    @classmethod
    def load(cls, directory: str | os.PathLike, limit: int | None = None) -> Replay:
        """Read the episodes in `directory` in order, the first `limit` of them if given.

        A damaged or unreadable episode file is reported and stops the load there: the
        intact episodes before it are kept (episode indices stay contiguous), and the
        damaged file is renamed to `*.damaged` so that the next episode can take its place.
        """
        replay = cls(directory)
        names = sorted(n for n in os.listdir(replay.directory) if _FILE.match(n))
        for expected, name in enumerate(names):
            if limit is not None and expected >= limit:
                break
            path = os.path.join(replay.directory, name)
            if int(_FILE.match(name).group(1)) != expected:
                log.warning("replay: episode %d is missing in %s; keeping %d episodes", expected, directory, expected)
                break
            try:
                with np.load(path) as data:
                    episode = {k: data[k] for k in KEYS}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning(
                    "replay: %s is damaged (%s: %s); keeping the %d intact episodes before it",
                    path,
                    type(exc).__name__,
                    exc,
                    expected,
                )
                os.replace(path, path + ".damaged")
                break
            replay.episodes.append(episode)
        return replay

    def truncate(self, count: int) -> None:
        """Keep the first `count` episodes; later ones leave memory and disk."""
        del self.episodes[count:]
        if self.directory is None:
            return
        for name in os.listdir(self.directory):
            m = _FILE.match(name)
            if (m and int(m.group(1)) >= count) or name.endswith(".tmp"):
                os.remove(os.path.join(self.directory, name))

    def empty_batch(self, lead: tuple[int, ...], batch_size: int, length: int) -> dict[str, np.ndarray]:
        """Uninitialised arrays [*lead, B, L, ...] with the stored episodes' shapes and
        dtypes, for `sample(out=...)` to fill."""
        if not self.episodes:
            raise ReplayError("the replay is empty: there is nothing to sample.")
        first = self.episodes[0]
        return {key: np.empty((*lead, batch_size, length, *first[key].shape[1:]), first[key].dtype) for key in KEYS}

    def sample(
        self, rng: np.random.Generator, batch_size: int, length: int, out: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """B chunks of L consecutive entries, each inside one episode.

        The start positions are drawn uniformly over all valid (episode, start) pairs.
        Returns obs [B, L, *obs_shape], action [B, L, A], reward [B, L]: written into `out`
        when given (arrays of those shapes, e.g. views into a larger batch, which saves
        the copy a stack would make), new arrays otherwise.
        """
        counts = np.array([len(ep["reward"]) - length + 1 for ep in self.episodes])
        counts = np.maximum(counts, 0)
        total = int(counts.sum())
        if total == 0:
            raise ReplayError(f"no stored episode holds a chunk of length {length} ({len(self)} episodes).")
        flat = rng.integers(0, total, size=batch_size)
        ends = np.cumsum(counts)
        episode_index = np.searchsorted(ends, flat, side="right")
        starts = flat - (ends[episode_index] - counts[episode_index])
        if out is None:
            out = self.empty_batch((), batch_size, length)
        for i, (e, s) in enumerate(zip(episode_index, starts)):
            for key in KEYS:
                out[key][i] = self.episodes[e][key][s : s + length]
        return out
