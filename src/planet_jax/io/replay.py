"""Host-side episode replay: whole episodes in numpy, chunks sampled inside episodes.

An episode is a dict of arrays with a leading time axis of T + 1 entries:
  obs     [T+1, *obs_shape]  uint8 frames (or float32 states); obs[0] is the reset frame
  action  [T+1, A] float32   action[t] is the action that led to obs[t]; action[0] = 0
  reward  [T+1] float32      reward[t] came with obs[t]; reward[0] = 0
so a chunk of length L is simply a slice [s, s + L) of every array, and the model's
step t consumes (action[t], obs[t]) and predicts reward[t].

Episodes are kept as separate arrays (never concatenated, so adding one copies nothing
else). With a directory, each new episode is written once as its own directory of
uncompressed `.npy` files, one per key, with their CRC-32s (`episode-000123/obs.npy`, ...,
`crc32.json`; written under a temporary name, then renamed, so a crash never leaves a
half-written episode under a real name), and from then on it is read memory-mapped: a
chunk reads its own frames from disk (or the page cache), and the process's memory does
not grow with the episodes stored. `load` opens them in order, checks every file against
its CRC-32 (one sequential read of the store) and reports damaged episodes. Episodes of
older runs, one `.npz` file each, are still read (into memory).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

log = logging.getLogger(__name__)

KEYS = ("obs", "action", "reward")
_FILE = re.compile(r"^episode-(\d{6})(\.npz)?$")  # a directory (this layout) or an .npz file (older runs)
_CHUNK = 1 << 24  # bytes per CRC-32 update: bounded memory while checking a large file


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes, read in chunks (from a memory map: no full copy)."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CHUNK):
        crc = zlib.crc32(flat[start : start + _CHUNK], crc)
    return crc


def episode_bytes(length: int, obs_shape: tuple[int, ...], obs_itemsize: int, action_size: int) -> int:
    """Bytes on disk of one stored episode of `length` agent steps (length + 1 entries)."""
    entry = int(np.prod(obs_shape)) * obs_itemsize + 4 * action_size + 4
    return (length + 1) * entry + 3 * 128 + 256  # .npy headers and crc32.json


class ReplayError(RuntimeError):
    """The replay store could not be read or written."""


class _Damaged(Exception):
    """An episode's files do not match their CRC-32s."""


def _open(path: str, *, verify: bool) -> dict[str, np.ndarray]:
    """An episode directory's arrays, memory-mapped read-only; with `verify`, checked
    against crc32.json first (a truncated file fails to map, a garbled one fails the check)."""
    episode = {key: np.load(os.path.join(path, f"{key}.npy"), mmap_mode="r") for key in KEYS}
    if verify:
        with open(os.path.join(path, "crc32.json")) as f:
            crcs = json.load(f)
        for key in KEYS:
            if _crc32(episode[key]) != crcs[key]:
                raise _Damaged(f"{key}.npy does not match its CRC-32")
    length = len(episode["reward"])
    if any(len(v) != length for v in episode.values()):
        raise _Damaged("its arrays have different lengths")
    return episode


class Replay:
    """Episodes of one agent. `directory=None` keeps them in memory only; `readonly` opens a
    store that this process must never change (another run's, for offline training)."""

    def __init__(self, directory: str | os.PathLike | None = None, *, readonly: bool = False):
        self.directory = os.fspath(directory) if directory is not None else None
        self.readonly = readonly
        self.episodes: list[dict[str, np.ndarray]] = []
        if self.directory is not None and not readonly:
            os.makedirs(self.directory, exist_ok=True)

    @classmethod
    def union(cls, *replays: Replay) -> Replay:
        """An in-memory replay over the episodes of `replays` in order, for sampling: the
        same arrays (memory-mapped where stored), nothing copied."""
        out = cls()
        out.episodes = [ep for replay in replays for ep in replay.episodes]
        return out

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_steps(self) -> int:
        """Agent steps stored (transitions, not counting each episode's reset frame)."""
        return sum(len(ep["reward"]) - 1 for ep in self.episodes)

    def add(self, episode: Mapping[str, np.ndarray]) -> int:
        """Store an episode (and write it if the store has a directory); returns its index."""
        if self.readonly:
            raise ReplayError(f"{self.directory} is read-only here: no episode is added to it.")
        episode = {k: np.asarray(episode[k]) for k in KEYS}
        length = len(episode["reward"])
        if any(len(v) != length for v in episode.values()) or length < 2:
            shapes = {k: v.shape for k, v in episode.items()}
            raise ReplayError(f"an episode needs equal time axes of at least 2 entries, got {shapes}.")
        index = len(self.episodes)
        if self.directory is not None:
            episode = self._write(index, episode)  # from now on read from disk
        self.episodes.append(episode)
        return index

    def _write(self, index: int, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Write episode `index` and return it memory-mapped from the files written."""
        path = os.path.join(self.directory, f"episode-{index:06d}")
        tmp = path + ".tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            crcs = {}
            for key in KEYS:
                with open(os.path.join(tmp, f"{key}.npy"), "wb") as f:
                    np.save(f, np.ascontiguousarray(episode[key]))
                    f.flush()
                    os.fsync(f.fileno())
                crcs[key] = _crc32(episode[key])
            with open(os.path.join(tmp, "crc32.json"), "w") as f:
                json.dump(crcs, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ReplayError(f"could not write episode {index} to {path}: {exc}") from exc
        return _open(path, verify=False)

    @classmethod
    def load(
        cls, directory: str | os.PathLike, limit: int | None = None, *, readonly: bool = False, verify: bool = True
    ) -> Replay:
        """Read the episodes in `directory` in order, the first `limit` of them if given.
        `verify=False` maps the files without checking (reading) them: for measurements
        of a cold page cache only.

        A damaged or unreadable episode file is reported and stops the load there: the
        intact episodes before it are kept (episode indices stay contiguous), and the
        damaged file is renamed to `*.damaged` so that the next episode can take its place
        (with `readonly`, left where it is: nothing in the directory changes).
        """
        replay = cls(directory, readonly=readonly)
        names = sorted(n for n in os.listdir(replay.directory) if _FILE.match(n))
        for expected, name in enumerate(names):
            if limit is not None and expected >= limit:
                break
            path = os.path.join(replay.directory, name)
            if int(_FILE.match(name).group(1)) != expected:
                log.warning("replay: episode %d is missing in %s; keeping %d episodes", expected, directory, expected)
                break
            try:
                if name.endswith(".npz"):
                    with np.load(path) as data:
                        episode = {k: data[k] for k in KEYS}
                else:
                    episode = _open(path, verify=verify)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, _Damaged) as exc:
                log.warning(
                    "replay: %s is damaged (%s: %s); keeping the %d intact episodes before it",
                    path,
                    type(exc).__name__,
                    exc,
                    expected,
                )
                if readonly:
                    break
                target, n = path + ".damaged", 1
                while os.path.exists(target):  # set aside before, in an earlier resume
                    target, n = f"{path}.damaged-{n}", n + 1
                os.replace(path, target)
                break
            replay.episodes.append(episode)
        return replay

    def truncate(self, count: int) -> None:
        """Keep the first `count` episodes; later ones leave memory and disk."""
        if self.readonly and count < len(self.episodes):
            raise ReplayError(f"{self.directory} is read-only here: its episodes are not truncated.")
        del self.episodes[count:]
        if self.directory is None:
            return
        for name in os.listdir(self.directory):
            m = _FILE.match(name)
            if (m and int(m.group(1)) >= count) or name.endswith(".tmp"):
                path = os.path.join(self.directory, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

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
