"""Checkpoints with orbax: the one module that imports it.

A checkpoint holds the full training state of every seed (parameters, optimizer state,
PRNG keys, step counters: a `TrainState` with a leading seed axis) and a JSON record of
the host-side counters (episodes, environment steps, episodes in each replay). Its step
number is the number of training episodes done. Saves are synchronous: when `save`
returns, the checkpoint is complete on disk (orbax writes to a temporary directory and
renames it when it is finished, so a crash mid-write leaves no half checkpoint under a
step's name). Orbax does not checksum what it writes (a garbled data file restores
silently to other numbers), so every checkpoint also records a fingerprint of its arrays
in the JSON record, and `restore` checks it. `restore` falls back from a damaged newest
checkpoint to the newest intact one, and refuses clearly when none is intact.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from planet_jax.model.state import TrainState
from planet_jax.ops import distributed, rng

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint (none there, the asked-for step missing, or all damaged)."""


def _to_saveable(state: TrainState) -> TrainState:
    # Typed PRNG keys are stored as their raw uint32 data.
    return state.replace(key=jax.random.key_data(state.key))


def _from_saveable(state: TrainState) -> TrainState:
    return state.replace(key=rng.wrap(state.key))


class _Mismatch(Exception):
    """The restored arrays differ from the fingerprint saved with them."""


@jax.jit
def fingerprint(tree) -> jax.Array:
    """uint32 [leaves]: a position-weighted sum of each array's bits, modulo 2^32.

    Any change of one element changes its leaf's sum (odd weights are invertible modulo
    2^32); it is a check against damage, not against an adversary. Computed where the
    arrays are, so a state sharded over devices or processes is never gathered to a host.
    """

    def leaf(x):
        x = x.ravel()
        if x.dtype == jnp.bool_:
            bits = x.astype(jnp.uint32)
        else:
            unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
            bits = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
        weights = jnp.arange(x.size, dtype=jnp.uint32) * jnp.uint32(0x9E3779B1) | jnp.uint32(1)
        return jnp.sum(bits * weights, dtype=jnp.uint32)

    return jnp.stack([leaf(x) for x in jax.tree.leaves(tree)])


def placement(sharding: jax.sharding.Sharding | None = None) -> jax.sharding.Sharding:
    """Where restored arrays go: `sharding`, or this process's first device.

    Restored arrays are committed to it. A fresh run's state must be placed the same way
    (`jax.device_put(state, placement())`): jit lowers committed and uncommitted arguments
    to different programs, so otherwise the first resume of a run misses every program its
    first process left in the persistent compilation cache (measured on a paper-size pixel
    run: experiments/results/cpu-startup).
    """
    return sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


class Checkpointer:
    """Save and restore `TrainState`s and host counters under `directory`."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        )

    def steps(self) -> list[int]:
        """The steps (episodes done) of the checkpoints on disk, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: TrainState, meta: dict) -> None:
        """Write a checkpoint for `step` and wait until it is complete.

        A failed write (a full disk, say) raises CheckpointError; orbax only renames a
        finished checkpoint into place, so the earlier ones stay intact.
        """
        saveable = _to_saveable(state)
        meta = {**meta, "fingerprint": np.asarray(fingerprint(saveable)).tolist()}
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(saveable), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self._manager.wait_until_finished()
        except Exception as exc:
            raise CheckpointError(
                f"could not write the checkpoint of step {step} in {self.directory} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
            ) from exc

    def restore(
        self,
        target: TrainState,
        step: int | None = None,
        accept: Callable[[dict], bool] | None = None,
        sharding: jax.sharding.Sharding | None = None,
    ) -> tuple[TrainState, dict, int]:
        """Restore (state, meta, step): `step`, or the newest intact checkpoint.

        target: a TrainState (or its `jax.eval_shape`) with the structure to restore into.
        accept: a test of the host counters; checkpoints it rejects are passed over like
        damaged ones (the trainer rejects those that know more episodes than are intact).
        sharding: where every array goes (its leading agent axis split over the devices,
        across processes with `--distributed`); default: this process's first device.
        """
        steps = self.steps()
        if step is not None:
            if step not in steps:
                raise CheckpointError(
                    f"no checkpoint at step {step} in {self.directory}; steps there: {steps or 'none'}."
                )
            candidates = [step]
        else:
            candidates = steps[::-1]
        if not candidates:
            raise CheckpointError(f"no checkpoint in {self.directory}.")
        # Explicit shardings let a checkpoint written on other devices (a GPU, 4 hosts) restore here.
        sharding = placement(sharding)
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), jax.eval_shape(_to_saveable, target)
        )
        errors = []
        for s in candidates:
            try:
                out = self._manager.restore(
                    s,
                    args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
                )
                meta = dict(out.meta)
                saved = meta.pop("fingerprint", None)  # (absent in checkpoints written before it existed)
                if saved is not None and np.asarray(fingerprint(out.state)).tolist() != saved:
                    raise _Mismatch("its arrays differ from the fingerprint saved with them")
                if accept is not None and not accept(meta):
                    raise CheckpointError("it needs episodes that are no longer intact on disk")
                if errors:
                    log.warning("checkpoint: restored step %d after damaged newer ones: %s", s, "; ".join(errors))
                    self._set_aside([c for c in candidates if c > s])
                return _from_saveable(out.state), meta, s
            except Exception as exc:  # orbax/tensorstore raise many kinds for damaged files
                if isinstance(exc, CheckpointError):
                    message = f"step {s} is unusable: {exc}"
                elif isinstance(exc, _Mismatch):
                    message = f"step {s} is damaged ({exc})"
                else:
                    message = f"step {s} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                log.warning("checkpoint: %s", message)
                errors.append(message)
        raise CheckpointError(
            f"no checkpoint in {self.directory} is usable ({'; '.join(errors)}); "
            "refusing to start over in this directory: move it away or pass a new --logdir."
        )

    def _set_aside(self, steps: list[int]) -> None:
        """Rename damaged checkpoints to `STEP.damaged` so that the run can write those steps again."""
        if distributed.is_primary():  # (with several processes, one renames for all)
            stamp = int(time.time())
            for step in steps:
                path = os.path.join(self.directory, str(step))
                os.replace(path, f"{path}.damaged-{stamp}")
        distributed.sync("checkpoints set aside")
        self._manager.reload()

    def close(self) -> None:
        self._manager.close()
