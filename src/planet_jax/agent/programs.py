"""The compiled programs of N agents at once: `compiled(cfg)` -> `Programs`.

An agent is one row of `config.rows(cfg)`: a seed, and within a sweep its hyperparameters.
Every program takes and returns arrays with a leading agent axis [R], so one compiled
update and one compiled act serve all agents; `over_agents` says how that axis runs
(batched, mapped, or split over devices).

    programs = compiled(cfg)
    state = fresh_state(cfg)                              # TrainState [R]
    state, metrics = programs.update(state, batches)      # batches [R, U, B, L, ...]
    action, belief = programs.act_explore(params, belief, prev, obs, keys, noise)

`train` runs these in the PlaNet loop, `bench` times them, `agent.Agent` restores into
`initializer(cfg)`'s shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import sweeps
from planet_jax.config import Config, ConfigError
from planet_jax.ops import backends, compiler, distributed, rng

log = logging.getLogger("planet_jax")


@dataclasses.dataclass(frozen=True)
class Programs:
    """One run's jitted functions over the agent axis [R] (of this process's agents).

    init(keys [R], hyper {name: [R]}) -> TrainState [R]
    update(state, batches {obs, action, reward: [R, U, B, L, ...]}) -> (state, metrics {name: [R, U]});
        the state is donated
    act_explore / act_test(params, belief, prev_action [R, M, A], obs [R, M, ...], keys [R],
        noise [R]) -> (action [R, M, A], belief): the planner with and without exploration noise
    sharding: how the agent axis is split over devices (None on one device)
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    act_explore: Callable[..., Any]
    act_test: Callable[..., Any]
    sharding: jax.sharding.NamedSharding | None


def seed_keys(cfg: Config) -> jax.Array:
    """[R] keys, one per agent (row) from its seed alone, so an agent of a sweep equals a run with that seed."""
    return jnp.stack([rng.key(seed) for seed, _ in sweeps.rows(cfg)])


def row_hyper(cfg: Config) -> dict:
    """[R] float32 arrays of each agent's sweepable hyperparameters."""
    rows = sweeps.rows(cfg)
    return {k: jnp.asarray([h[k] for _, h in rows], jnp.float32) for k in sweeps.SWEEPABLE}


def initializer(cfg: Config) -> Callable[[], Any]:
    """A function of no arguments that makes a fresh TrainState for this process's agents;
    `jax.eval_shape` of it is the target a checkpoint restores into."""
    programs = compiled(cfg)
    mine = distributed.share(len(sweeps.rows(cfg)))
    args = jax.tree.map(lambda x: x[mine.start : mine.stop], (seed_keys(cfg), row_hyper(cfg)))
    if programs.sharding is not None:
        args = distributed.to_global(args, programs.sharding)
    return functools.partial(programs.init, *args)


def fresh_state(cfg: Config):
    """A fresh TrainState [R], placed (committed) as a restored one is, so that a resumed run
    compiles the same programs and finds them in the compilation cache (`checkpoint.placement`)."""
    from planet_jax.io.checkpoint import placement

    return jax.device_put(initializer(cfg)(), placement(compiled(cfg).sharding))


def agent_sharding(num_agents: int):
    """A NamedSharding that splits the leading agent axis over the devices (None on one device).

    One process: uses the largest device count that divides the number of agents, and
    says so when that leaves devices idle. Several processes (`--distributed`): every
    device of every process, grouped by process, so the agent count must divide evenly.
    """
    devices = distributed.devices()
    if jax.process_count() > 1:
        if num_agents % len(devices):
            raise ConfigError(
                f"--distributed: {num_agents} agents do not divide over the {len(devices)} devices of "
                f"{jax.process_count()} processes; choose a multiple of {len(devices)} (--num-seeds, --sweep)."
            )
        used = len(devices)
    else:
        used = max(d for d in range(1, len(devices) + 1) if num_agents % d == 0)
    if used < len(devices):
        log.warning(
            "%d agents do not divide over %d devices: using %d of them (choose a multiple of %d agents to use all)",
            num_agents, len(devices), used, len(devices),
        )  # fmt: skip
    if used == 1:
        return None
    mesh = jax.sharding.Mesh(np.array(devices[:used]), ("agents",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("agents"))


def agent_mode(cfg: Config) -> str:
    """`map` or `vmap`: the config's `agent_axis`, with `auto` resolved for the backend."""
    return backends.axis(cfg.train.agent_axis)


@functools.cache
def over_agents(fn, cfg: Config, sharding):
    """`fn` applied to every agent along the leading axis of all its arguments.

    `vmap` batches the agents into the same kernels (what makes N seeds cheap on a GPU);
    `map` runs them one after another with the kernels of a single agent, which on a CPU
    costs the same and makes agent i of a sweep bit-identical to a run of agent i alone.
    With several devices, each device maps over its own share of the agents (`shard_map`).
    """
    if agent_mode(cfg) == "vmap":
        inner = jax.vmap(fn)
    else:
        inner = lambda *args: jax.lax.map(lambda a: fn(*a), args)  # noqa: E731
    if sharding is None:
        return inner
    spec = jax.sharding.PartitionSpec("agents")
    # No collectives: every device works on its own agents, so replication checks are moot.
    return jax.shard_map(inner, mesh=sharding.mesh, in_specs=spec, out_specs=spec, check_vma=False)


@functools.cache
def compiled(cfg: Config) -> Programs:
    """The run's `Programs`, jitted over the agent axis (see `over_agents`).

    The programs see the config with every backend-dependent setting resolved here, once
    (`backends.resolve`); `cfg` itself, as config.json holds it, keeps `auto`."""
    from planet_jax.agent.planner import act
    from planet_jax.model.state import create_train_state
    from planet_jax.model.update import scan_updates

    cfg = backends.resolve(cfg)
    sharding = agent_sharding(len(sweeps.rows(cfg)))
    over = functools.partial(over_agents, cfg=cfg, sharding=sharding)
    return Programs(
        init=jax.jit(over(functools.partial(create_train_state, cfg=cfg))),
        update=jax.jit(over(functools.partial(scan_updates, cfg=cfg)), donate_argnums=0),
        act_explore=compiler.jit(over(functools.partial(act, cfg=cfg, explore=True))),  # the planner's options
        act_test=compiler.jit(over(functools.partial(act, cfg=cfg, explore=False))),
        sharding=sharding,
    )
