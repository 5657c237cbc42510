"""Several processes (hosts) training one set of agents: `jax.distributed` and global arrays.

With `--distributed`, every process runs the same program. The agents (rows of a seed
or hyperparameter sweep) are split into equal contiguous shares, one per process; a
process steps the environments and keeps the replays of its own share only. The
training state and the beliefs are global `jax.Array`s sharded over every device of
every process along the agent axis, so one compiled update and one compiled act call
(issued by all processes together) serve all agents, and orbax writes each process's
shards into the same checkpoint. Host-side data crosses between the two views with
`to_global` (this process's rows -> a global array) and `to_local` (a global array ->
this process's rows); `gather` brings everyone's rows to every process, so that each can
take the same decision (stop, fail) and process 0 can write the shared logs.

With one process all of this reduces to plain local arrays: `share` is every row and
the helpers are cheap identities.
"""

from __future__ import annotations

import os

import jax
import numpy as np


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """`jax.distributed.initialize` from flags, else $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES,
    $JAX_PROCESS_ID, else JAX's cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU).

    Must run before anything else touches JAX's devices.
    """
    env = os.environ
    address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None
    count = num_processes or int(env.get("JAX_NUM_PROCESSES", 0)) or None
    index = process_id if process_id >= 0 else int(env.get("JAX_PROCESS_ID", -1))
    index = None if index < 0 else index
    try:
        jax.distributed.initialize(address, count, index)
    except (ValueError, RuntimeError) as exc:
        raise RuntimeError(
            f"--distributed: could not join the other processes ({exc}). Give --coordinator-address HOST:PORT "
            "(process 0's host), --num-processes and --process-id, or set JAX_COORDINATOR_ADDRESS, "
            "JAX_NUM_PROCESSES and JAX_PROCESS_ID, or launch under SLURM / Open MPI."
        ) from exc


def is_primary() -> bool:
    """Whether this process writes the shared files (config, metrics, curves, summary)."""
    return jax.process_index() == 0


def share(num_rows: int) -> range:
    """The rows (agents) this process owns: its contiguous 1/P of them."""
    count = jax.process_count()
    if num_rows % count:
        raise ValueError(f"{num_rows} agents do not split evenly over {count} processes")
    per = num_rows // count
    return range(jax.process_index() * per, (jax.process_index() + 1) * per)


def devices() -> list:
    """Every device of every process, grouped by process, so that the mesh's i-th block of
    devices belongs to process i and holds the rows of `share`."""
    return sorted(jax.devices(), key=lambda d: (d.process_index, d.id))


def to_global(tree, sharding):
    """This process's rows [n, ...] of every leaf -> global arrays [P*n, ...] under `sharding`.

    Typed PRNG keys travel as their raw data. With one process: `jax.device_put`.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def leaf(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            return jax.random.wrap_key_data(leaf(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, (jax.process_count() * x.shape[0], *x.shape[1:]))

    return jax.tree.map(leaf, tree)


def to_local(tree):
    """Global arrays [R, ...] -> numpy arrays of this process's rows [R/P, ...]."""

    def leaf(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(x)
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
        return np.concatenate([np.asarray(s.data) for s in shards])

    return jax.tree.map(leaf, tree)


def gather(tree):
    """Every process's rows, on every process: global arrays in full, host arrays [n, ...]
    concatenated over processes into [P*n, ...]. All processes must call it together."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def sync(name: str) -> None:
    """Wait until every process reaches this point."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
