"""Benchmarks: `python -m planet_jax.bench {envs,update,planner,sweep,episode,cycle,replay,all} --preset paper [--json FILE]`.

- envs: frames per second of step + render, for a batch of 1, 2, 4 environments;
- update: seconds per gradient update (`--batch B ...`);
- planner: milliseconds per action (posterior step + CEM search) for 1 and N environments;
- sweep: N = 1, 2, 4, 8 agents in one program (`--seeds`): seconds per update step and per
  acting step of all N, and the speed-up over N separate runs;
- episode: one collection episode with the planner (exploration noise on), environments
  and all;
- cycle: one whole training cycle, C updates + one collection episode, as `train` runs it;
- replay: the host batches of one update call from a stored replay (`--stored` episodes),
  held in memory, on disk with a warm and with a cold page cache, and the memory of each;
- all: every case above.

Every figure is a median over repeats after warm-up, with min and max, the device it ran
on, the analytic FLOP count and achieved rate where there is one, and the float32
matrix-multiply rate that the same device reaches in the same run, so each figure can be
read as a fraction of the machine's limit. `--json FILE` writes a list of records, one
per measured case, with the keys of `Record` (and the settings measured).
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from planet_jax.ops import hostmem  # standard library only

if __name__ == "__main__":  # before JAX loads: see planet_jax.ops.hostmem
    hostmem.reexec_with_malloc_settings()

import numpy as np
import tyro

from planet_jax import cli  # standard library only
from planet_jax.io.logger import write_json  # numpy only


@dataclasses.dataclass
class Record:
    """One measured case."""

    name: str
    device: str
    median_s: float
    min_s: float
    max_s: float
    gflop: float | None
    achieved_gflops: float | None
    matmul_gflops: float | None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("settings", "extra")}
        out.update(self.settings)
        out.update(self.extra)
        return out


def device_name() -> str:
    """The JAX default device, in words (with the CPU model on CPU)."""
    import jax

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        model = cpu_model()
        import os

        # How malloc serves XLA's buffers (planet_jax.ops.hostmem): a quarter of an update or more.
        pages = hostmem.describe()
        # The cores this process may run on (a `taskset` narrows them), not the machine's.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return "cpu ({})".format(", ".join(part for part in (f"{cores} cores", model, pages) if part))
    return f"{dev.platform} ({dev.device_kind})"


def timeit(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> list[float]:
    """Seconds per call of `fn` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_calls(run: Callable[[], Any], *, warmup: int, repeats: int) -> tuple[float, list[float]]:
    """(seconds of the first call, which includes compilation; seconds per call after warm-up)."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    return first, timeit(run, warmup=warmup, repeats=repeats)


def matmul_gflops(size: int | None = None, repeats: int = 5) -> float:
    """The float32 matmul rate of the default device: a large square matmul, median of repeats.

    Where this project compiles with other options than JAX's defaults (`compiler.options`:
    on CPUs, XLA's own products instead of YNNPACK's), both compilations are timed and the
    faster one counts, so that no figure is read against a slowed-down reference.
    """

    if size is None:
        from planet_jax.ops import backends

        size = 2048 if backends.backend() == "cpu" else 8192
    rates = []
    for f, a, b in _matmul_cases(size):
        times = timeit(lambda f=f, a=a, b=b: f(a, b).block_until_ready(), warmup=2, repeats=repeats)
        rates.append(2 * size**3 / statistics.median(times) / 1e9)
    return max(rates)


@functools.lru_cache(maxsize=4)
def _matmul_cases(size: int):
    """[(jitted matmul, a, b)] of size x size float32 with JAX's default options and, where they
    differ, this project's; made once per size and backend run."""
    import jax
    import jax.numpy as jnp

    from planet_jax.ops import compiler

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    ours = compiler.options()
    forms = [{}, ours] if ours else [{}]
    return [(jax.jit(lambda a, b: a @ b, compiler_options=opts), a, b) for opts in forms]


class MatmulRate:
    """The device's float32 matmul rate, read again after every measured case.

    A shared machine's speed drifts (on a 2-core VM the same 2048^2 matmul read up to 1.4x
    apart within one hour), so a case is compared with the mean of the readings
    taken just before and just after its own timing (`around_case`), not with one reading
    from the start of a run that may last many minutes.
    """

    def __init__(self, size: int | None = None):
        self.size = size
        self.last = matmul_gflops(size)

    def around_case(self) -> list[float]:
        """[before, after]: the readings on either side of the case(s) just timed."""
        before, self.last = self.last, matmul_gflops(self.size)
        return [before, self.last]


def make_record(name, times, *, device, gflop=None, matmul_readings=None, settings=None, extra=None) -> Record:
    """One measured case, compared with the mean of `matmul_readings` (kept in extra)."""
    matmul = None
    extra = {"times_s": list(times), **(extra or {})}  # per call: a bimodal case shows here
    if matmul_readings:
        matmul = statistics.mean(matmul_readings)
        extra = {**extra, "matmul_readings": matmul_readings}
    median = statistics.median(times)
    return Record(
        name=name,
        device=device,
        median_s=median,
        min_s=min(times),
        max_s=max(times),
        gflop=gflop,
        achieved_gflops=(gflop / median if gflop else None),
        matmul_gflops=matmul,
        settings=settings or {},
        extra=extra,
    )


# ----------------------------------------------------------------------------------------
# Cases.


def bench_envs(args) -> list[Record]:
    """Frames per second of step + render for batches of environments (default 1, 2, 4),
    stepped in this process and, for each count in `--env-workers`, in that many worker
    processes; the cases run in turns, so that a drift of the machine's speed hits all."""
    from planet_jax.io.envs import env_seed, make_batch_env

    cfg = _bench_config(args)
    cases = [(n, w) for n in (args.envs or [1, 2, 4]) for w in [0, *args.env_workers] if w <= n]
    batches, times = {}, {}
    for n, w in cases:
        batches[n, w] = make_batch_env(cfg, [env_seed(0, "train", i) for i in range(n)], workers=w)
        batches[n, w].reset()
        times[n, w] = []
    rng = np.random.default_rng(0)

    def run(batch, steps=args.steps):
        for _ in range(steps):
            _, _, done = batch.step(rng.uniform(-1, 1, (len(batch), batch.action_size)))
            if done.any():
                batch.reset()

    for case in cases:
        run(batches[case], 2)  # warm-up
    for _ in range(args.repeats):
        for case in cases:
            times[case] += timeit(lambda b=batches[case]: run(b), warmup=0, repeats=1)
    records = []
    for n, w in cases:
        fps = n * args.steps / statistics.median(times[n, w])
        records.append(
            make_record(
                f"envs/{args.task}/n={n}" + (f"/workers={w}" if w else ""),
                [t / args.steps for t in times[n, w]],
                device=f"host ({device_name_host()})",
                settings={
                    "task": args.task,
                    "envs": n,
                    "workers": w,
                    "obs": cfg.env.obs,
                    "action_repeat": cfg.action_repeat,
                },  # fmt: skip
                extra={"frames_per_s": fps, "sim_steps_per_s": fps * cfg.action_repeat},
            )
        )
        batches[n, w].close()
    return records


def _dense(n_in: int, n_out: int) -> float:
    return 2.0 * n_in * n_out


def model_flops(cfg) -> dict[str, float]:
    """Analytic forward FLOPs (2 per multiply-add) of the model's parts, per frame or step.

    encoder, decoder: per frame; transition: one prior step; posterior: the extra work of
    a posterior step; reward: one reward prediction.
    """
    m, d, s, hdim, a = cfg.model, cfg.deter_size, cfg.stoch_size, cfg.model.hidden_size, cfg.action_size
    if cfg.env.obs == "pixels":
        enc, size, c_in = 0.0, 64, 3
        for mult in (1, 2, 4, 8):
            size = (size - 4) // 2 + 1
            enc += 2.0 * size * size * 16 * c_in * mult * m.cnn_depth
            c_in = mult * m.cnn_depth
        dec, size, c_in = _dense(cfg.feature_size, 32 * m.cnn_depth), 1, 32 * m.cnn_depth
        for c_out, k in ((4 * m.cnn_depth, 5), (2 * m.cnn_depth, 5), (m.cnn_depth, 6), (3, 6)):
            dec += 2.0 * size * size * k * k * c_in * c_out
            size, c_in = 2 * (size - 1) + k, c_out
    else:
        mlp = lambda n_in, n_out: (
            _dense(n_in, m.state_units)
            + (m.state_layers - 1) * _dense(m.state_units, m.state_units)
            + _dense(m.state_units, n_out)
        )
        enc, dec = mlp(cfg.obs_shape[0], m.state_units), mlp(cfg.feature_size, cfg.obs_shape[0])
    gru = _dense(hdim + d, 2 * d) + _dense(hdim + d, d) if d else 0.0  # GRUBlockCell: gates, candidate
    if m.variant == "rssm":
        transition = _dense(s + a, hdim) + gru + _dense(d, hdim) + _dense(hdim, 2 * s)
        posterior = _dense(d + cfg.embed_size, hdim) + _dense(hdim, 2 * s)
    elif m.variant == "ssm":
        transition = _dense(s + a, hdim) + _dense(hdim, 2 * s)
        posterior = _dense(2 * s + cfg.embed_size, hdim) + _dense(hdim, 2 * s)
    else:
        transition, posterior = _dense(a + cfg.embed_size, hdim) + gru, 0.0
    reward = (
        _dense(cfg.feature_size, m.reward_units)
        + (m.reward_layers - 1) * _dense(m.reward_units, m.reward_units)
        + _dense(m.reward_units, 1)
    )
    return {"encoder": enc, "decoder": dec, "transition": transition, "posterior": posterior, "reward": reward}


def update_gflop(cfg, batch: int, length: int) -> float:
    """One gradient step: forward over B x L frames and steps, backward counted as twice forward."""
    f = model_flops(cfg)
    per_step = f["encoder"] + f["decoder"] + f["transition"] + f["posterior"] + f["reward"]
    return 3.0 * per_step * batch * length / 1e9


def bench_update(args) -> list[Record]:
    """Seconds per gradient update at the preset's sizes, for each --batch B."""
    import jax

    from planet_jax import config as C
    from planet_jax.model.state import create_train_state
    from planet_jax.model.update import update
    from planet_jax.ops import backends, rng

    base = _bench_config(args)
    device = device_name()
    rate = MatmulRate(args.matmul_size)
    records = []
    for batch in args.batch or [base.train.batch_size]:
        cfg = C.validate(C.replace(base, batch_size=batch))
        length = cfg.train.chunk_length
        batches = jax.device_put(_random_batch(cfg, (1, batch, length), np.random.default_rng(0)))
        holder = [create_train_state(rng.key(0), cfg=cfg)]

        def run(holder=holder, batches=batches, cfg=cfg):
            holder[0], metrics = update(holder[0], batches, cfg=cfg)
            jax.block_until_ready(metrics)

        compile_s, times = time_calls(run, warmup=1, repeats=args.repeats)
        readings = rate.around_case()
        records.append(
            make_record(
                f"update/{args.preset}/B={batch}",
                times,
                device=device,
                gflop=update_gflop(cfg, batch, length),
                matmul_readings=readings,
                settings=_settings(
                    cfg, args, batch=batch, length=length, conv_impl=backends.conv_impl(cfg.model.conv_impl)
                ),
                extra={"first_call_s": compile_s},
            )
        )
    return records


def plan_gflop(cfg) -> float:
    """One CEM search: I iterations x J candidates x H steps of (prior step + reward head)."""
    f, p = model_flops(cfg), cfg.planner
    return (f["transition"] + f["reward"]) * p.num_iterations * p.num_candidates * p.horizon / 1e9


def bench_planner(args) -> list[Record]:
    """Milliseconds per action of `act` (posterior step + CEM) for 1 and N environments.

    The cases are timed in turns (1, N, 1, N, ...); `x_one_env` is the median ratio of each
    N-env call to the one-env call just before it, and all cases share the matmul readings
    taken before and after the whole block. Each round of turns also starts with a short
    matmul reading (median of 3), so `of_matmul_paired` is the median over rounds of this
    call's GFLOP/s over the matmul rate read seconds before it: on a machine whose speed
    drifts over minutes, the fraction of its limit with the least drift in it.
    """
    import jax

    from planet_jax.agent.planner import act_jit, env_mode, reward_pass, unroll_steps
    from planet_jax.model import rssm
    from planet_jax.model.networks import init_params
    from planet_jax.ops import rng

    cfg = _bench_config(args)
    params = init_params(rng.key(0), cfg)
    device = device_name()
    rate = MatmulRate(args.matmul_size)
    counts = sorted({1, *(args.envs or [4])})
    runs, first_call_s = {}, {}
    for n in counts:
        obs = jax.device_put(_random_obs(cfg, (n,), np.random.default_rng(0)))
        holder = [rssm.initial((n,), cfg), jax.numpy.zeros((n, cfg.action_size)), rng.key(1)]

        def run(holder=holder, obs=obs):
            belief, prev, key = holder
            key, k = jax.random.split(key)
            action, belief = act_jit(params, belief, prev, obs, k, cfg=cfg, explore=True)
            holder[:] = [belief, action, key]
            jax.block_until_ready(action)

        first_call_s[n], _ = time_calls(run, warmup=2, repeats=0)
        runs[n] = run
    # The batch sizes take turns, repeat by repeat, so that "N envs cost x times one env"
    # compares calls made seconds apart: this machine's speed drifts over minutes.
    times = {n: [] for n in counts}
    round_rates = []
    for _ in range(args.repeats):
        round_rates.append(matmul_gflops(args.matmul_size, repeats=3))
        for n in counts:
            times[n] += timeit(runs[n], warmup=0, repeats=1)
    readings = rate.around_case()
    records = []
    for n in counts:
        median = statistics.median(times[n])
        records.append(
            make_record(
                f"planner/{args.preset}/envs={n}",
                times[n],
                device=device,
                gflop=n * plan_gflop(cfg),
                matmul_readings=readings,
                settings=_settings(
                    cfg,
                    args,
                    envs=n,
                    env_axis=env_mode(cfg),
                    rollout_unroll=unroll_steps(cfg),
                    reward_pass=reward_pass(cfg),
                    horizon=cfg.planner.horizon,
                    iterations=cfg.planner.num_iterations,
                    candidates=cfg.planner.num_candidates,
                    elites=cfg.planner.num_elites,
                ),
                extra={
                    "ms_per_action": median * 1e3,
                    "ms_per_env_action": median * 1e3 / n,
                    # Median over repeats of (this call) / (the one-env call just before it).
                    "x_one_env": statistics.median(t / one for t, one in zip(times[n], times[1])),
                    "of_matmul_paired": statistics.median(
                        n * plan_gflop(cfg) / t / rate for t, rate in zip(times[n], round_rates)
                    ),
                    "matmul_per_round": round_rates,
                    "times_s": times[n],
                    "first_call_s": first_call_s[n],
                },
            )
        )
    return records


def _settings(cfg, args, **more) -> dict[str, Any]:
    overrides = {"overrides": list(args.set)} if args.set else {}
    matmul = {"matmul_size": args.matmul_size} if args.matmul_size else {}  # (recorded when not the default)
    from planet_jax.ops import backends, compiler

    options = {
        "compiler_options": compiler.options(),  # of act (the matmul reference: see matmul_gflops)
        "matmul_precision": compiler.resolved_precision(cfg),  # of the model's products
        "platform": backends.choices(cfg),  # every `auto` setting as it ran
    }
    return {"preset": args.preset, "task": args.task, "obs": cfg.env.obs, **overrides, **matmul, **options, **more}


def _bench_config(args, **overrides):
    """The preset, with the case's command-line overrides (recorded with every figure)."""
    from planet_jax import config as C

    cfg = C.preset(args.preset, args.task)
    flags = {
        "obs": args.obs,
        "train_steps": args.train_steps,
        "updates_per_call": args.updates_per_call,
        "episode_steps": args.episode_steps,
        "agent_axis": args.agent_axis,
    }
    cfg = C.replace(cfg, **dict(C.parse_override(cfg, text) for text in args.set))
    return C.validate(C.replace(cfg, **{k: v for k, v in flags.items() if v is not None}, **overrides))


def _random_obs(cfg, shape, rng) -> np.ndarray:
    """[*shape, *obs_shape] observations as stored (uint8 frames or float32 states)."""
    if cfg.env.obs == "pixels":
        return rng.integers(0, 256, (*shape, *cfg.obs_shape), dtype=np.uint8)
    return rng.normal(size=(*shape, *cfg.obs_shape)).astype(np.float32)


def _random_batch(cfg, shape, rng) -> dict[str, np.ndarray]:
    """A batch in the replay's layout with leading axes `shape` (..., B, L)."""
    return {
        "obs": _random_obs(cfg, shape, rng),
        "action": rng.uniform(-1, 1, (*shape, cfg.action_size)).astype(np.float32),
        "reward": rng.uniform(0, 1, shape).astype(np.float32),
    }


def bench_sweep(args) -> list[Record]:
    """N agents in one compiled program, exactly as `train --num-seeds N` runs them.

    update: one gradient update of every agent (a call of `updates_per_call`, divided);
    act: one acting step (posterior update + CEM search) of every agent, one env each.
    speedup = N x (time of one agent) / (time of N agents): N separate runs over one program.
    """
    import jax

    from planet_jax.agent import programs
    from planet_jax.agent.acting import fold_in_keys
    from planet_jax.model import rssm
    from planet_jax.ops import rng

    device = device_name()
    rate = MatmulRate(args.matmul_size)
    records: list[Record] = []
    single: dict[str, float] = {}
    for n in sorted({1, *(args.seeds or [1, 2, 4, 8])}):
        cfg = _bench_config(args, num_seeds=n, **({"batch_size": args.batch[0]} if args.batch else {}))
        compiled = programs.compiled(cfg)
        update_fn, act_fn, sharding = compiled.update, compiled.act_explore, compiled.sharding
        put = functools.partial(jax.device_put, device=sharding)  # (None: the default device)
        t, k = cfg.train, cfg.train.updates_per_call
        gen = np.random.default_rng(0)
        batches = put(_random_batch(cfg, (n, k, t.batch_size, t.chunk_length), gen))
        holder = [programs.initializer(cfg)()]  # (already on the agents' devices)

        def run_update(holder=holder, batches=batches, update_fn=update_fn):
            holder[0], metrics = update_fn(holder[0], batches)
            jax.block_until_ready(metrics)

        compile_update, times = time_calls(run_update, warmup=1, repeats=args.repeats)
        per_update = [x / k for x in times]
        params, noise = holder[0].params, holder[0].hyper["exploration_noise"]
        obs = put(_random_obs(cfg, (n, 1), gen))
        acting = [put(rssm.initial((n, 1), cfg)), put(np.zeros((n, 1, cfg.action_size), np.float32)), 0]
        keys = put(jax.random.split(rng.key(1), n))

        def run_act(acting=acting, params=params, noise=noise, obs=obs, keys=keys, act_fn=act_fn):
            belief, prev, step = acting
            action, belief = act_fn(params, belief, prev, obs, fold_in_keys(keys, step), noise)
            acting[:] = [belief, action, step + 1]
            jax.block_until_ready(action)

        compile_act, act_times = time_calls(run_act, warmup=2, repeats=args.repeats)
        readings = rate.around_case()
        for what, ts, gflop, first in (
            ("update", per_update, n * update_gflop(cfg, t.batch_size, t.chunk_length), compile_update),
            ("act", act_times, n * plan_gflop(cfg), compile_act),
        ):
            median = statistics.median(ts)
            single.setdefault(what, median)
            extra = {
                "seconds_per_agent": median / n,
                "speedup_vs_separate_runs": n * single[what] / median,
                "cost_vs_one_agent": median / single[what],
                "first_call_s": first,
            }
            if what == "update":
                extra["cycle_s"] = median * t.train_steps  # C updates, from the measured step
            records.append(
                make_record(
                    f"sweep/{args.preset}/{what}/N={n}",
                    ts,
                    device=device,
                    gflop=gflop,
                    matmul_readings=readings,
                    settings=_settings(
                        cfg,
                        args,
                        agents=n,
                        agent_axis=programs.agent_mode(cfg),
                        devices=1 if sharding is None else len(sharding.mesh.devices.flat),
                        batch=t.batch_size,
                        length=t.chunk_length,
                        updates_per_call=k,
                        train_steps=t.train_steps,
                    ),
                    extra=extra,
                )
            )
    return records


def _trainer(cfg, logdir: str):
    """A Trainer whose replay already holds one random episode per agent."""
    from planet_jax.train import Trainer

    trainer = Trainer(cfg, logdir, progress=False)
    trainer.store(trainer.collect_random())
    return trainer


def bench_episode(args) -> list[Record]:
    """Seconds of one collection episode: planner with exploration noise + env step + render."""
    import tempfile

    cfg = _bench_config(args, seed_episodes=1)
    device = device_name()
    rate = MatmulRate(args.matmul_size)
    with tempfile.TemporaryDirectory() as logdir:
        trainer = _trainer(cfg, logdir)
        first, times = time_calls(trainer.collect_planner, warmup=0, repeats=args.long_repeats)
        readings = rate.around_case()
        trainer.close()
    steps = cfg.episode_length
    return [
        make_record(
            f"episode/{args.preset}/{args.task}",
            times,
            device=device,
            gflop=steps * plan_gflop(cfg),
            matmul_readings=readings,
            settings=_settings(cfg, args, agent_steps=steps, episode_steps=cfg.env.episode_steps),
            extra={"first_call_s": first, "ms_per_agent_step": statistics.median(times) * 1e3 / steps},
        )
    ]


def bench_cycle(args) -> list[Record]:
    """Seconds of one training cycle as `train` runs it: C updates, then one collection episode."""
    import tempfile

    cfg = _bench_config(args, seed_episodes=1)
    t = cfg.train
    device = device_name()
    rate = MatmulRate(args.matmul_size)
    with tempfile.TemporaryDirectory() as logdir:
        trainer = _trainer(cfg, logdir)

        def cycle():
            trainer.train_cycle()
            trainer.collect_planner()

        first, times = time_calls(cycle, warmup=0, repeats=args.long_repeats)
        readings = rate.around_case()
        trainer.close()
    gflop = t.train_steps * update_gflop(cfg, t.batch_size, t.chunk_length) + cfg.episode_length * plan_gflop(cfg)
    return [
        make_record(
            f"cycle/{args.preset}/{args.task}",
            times,
            device=device,
            gflop=gflop,
            matmul_readings=readings,
            settings=_settings(
                cfg,
                args,
                train_steps=t.train_steps,
                updates_per_call=t.updates_per_call,
                batch=t.batch_size,
                length=t.chunk_length,
                agent_steps=cfg.episode_length,
                episode_steps=cfg.env.episode_steps,
            ),
            extra={"first_call_s": first},
        )
    ]


def _memory() -> dict[str, float]:
    """The process's resident memory in MB: anonymous (its own) and file-backed (mapped
    page cache, which the kernel may drop at any time), from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def _evict(directory: str) -> None:
    """Drop the page cache of every file under `directory` (POSIX_FADV_DONTNEED; clean
    pages only, no privileges needed), so that the next read comes from the disk."""
    import os

    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def bench_replay(args) -> list[Record]:
    """The replay as a paper run uses it: `--stored` synthetic episodes of the preset's task
    (501 frames of 64x64x3 for a paper pixel run), then seconds per host batch of one update
    call (updates_per_call x B x L chunks, what `train` samples while the update runs) from
    episodes held in memory (the replay before the disk store), from the disk store with a
    warm page cache, and with a cold one (evicted before every repeat); with the resident
    memory of each and the seconds to load (CRC-check) the store."""
    import os
    import tempfile

    from planet_jax.io.replay import Replay

    cfg = _bench_config(args)
    t = cfg.train
    rng = np.random.default_rng(0)
    length = cfg.episode_length
    episode = {  # one random episode, stored N times (contents do not matter to the copies)
        "obs": _random_obs(cfg, (length + 1,), rng),
        "action": rng.uniform(-1, 1, (length + 1, cfg.action_size)).astype(np.float32),
        "reward": rng.uniform(0, 1, length + 1).astype(np.float32),
    }
    k, batch, chunk = t.updates_per_call, t.batch_size, t.chunk_length
    call_mb = k * batch * chunk * (episode["obs"][0].nbytes + 4 * cfg.action_size + 4) / 1e6
    settings = _settings(cfg, args, stored=args.stored, updates_per_call=k, batch=batch, length=chunk)
    device = f"host ({device_name_host()})"
    records = []

    def sampler(replay):
        out = replay.empty_batch((k,), batch, chunk)

        def run():
            for j in range(k):
                replay.sample(rng, batch, chunk, out={key: v[j] for key, v in out.items()})

        return run

    def record(name, times, memory, **extra):
        median = statistics.median(times)
        extra = {"mb_per_call": call_mb, "batches_per_s": k / median, "mb_per_s": call_mb / median, **memory, **extra}
        records.append(make_record(f"replay/{name}", times, device=device, settings=settings, extra=extra))

    base = tempfile.mkdtemp(dir=args.replay_dir or None, prefix="planet_jax-replay-")
    try:
        store = Replay(os.path.join(base, "seed-0"))
        start = time.perf_counter()
        for _ in range(args.stored):
            store.add(episode)
        write_s = time.perf_counter() - start
        stored_mb = args.stored * sum(v.nbytes for v in episode.values()) / 1e6
        del store
        _evict(base)
        before = _memory()
        start = time.perf_counter()
        disk = Replay.load(os.path.join(base, "seed-0"))
        load_s = time.perf_counter() - start
        after = _memory()
        grown = {"stored_mb": stored_mb, "rss_anon_growth_mb": after["RssAnon"] - before["RssAnon"]}
        record(
            "disk-warm",
            timeit(sampler(disk), warmup=1, repeats=args.repeats),
            grown,
            load_s=load_s,
            write_s=write_s,
        )
        del disk
        cold = []
        for _ in range(args.repeats):
            # Mapped pages stay cached: unmap (drop the store), evict, map again unread.
            _evict(base)
            run = sampler(Replay.load(os.path.join(base, "seed-0"), verify=False))
            cold += timeit(run, warmup=0, repeats=1)
            del run
        record("disk-cold", cold, grown)
        if args.stored_in_memory:
            before = _memory()
            memory = Replay()
            for _ in range(args.stored):
                memory.add({key: v.copy() for key, v in episode.items()})
            after = _memory()
            grown = {"stored_mb": stored_mb, "rss_anon_growth_mb": after["RssAnon"] - before["RssAnon"]}
            record("memory", timeit(sampler(memory), warmup=1, repeats=args.repeats), grown)
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return records


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or ""


def device_name_host() -> str:
    import os

    return ", ".join(part for part in (f"{os.cpu_count()} cores", cpu_model()) if part)


# ----------------------------------------------------------------------------------------


def _print(records: list[Record]) -> None:
    for r in records:
        parts = [f"{r.name:40s}", f"median {r.median_s * 1e3:9.2f} ms", f"[{r.min_s * 1e3:.2f}, {r.max_s * 1e3:.2f}]"]
        if r.achieved_gflops is not None:
            parts.append(f"{r.gflop:8.2f} GFLOP  {r.achieved_gflops:7.1f} GFLOP/s")
        if r.matmul_gflops:
            parts.append(f"matmul {r.matmul_gflops:6.1f} GFLOP/s")
            if "matmul_readings" in r.extra:
                parts.append("(read {:.0f} and {:.0f})".format(*r.extra["matmul_readings"]))
            if r.achieved_gflops is not None:
                parts.append(f"({r.achieved_gflops / r.matmul_gflops:.2f} of it)")
        for k, v in r.extra.items():
            if isinstance(v, list):  # readings and per-call times: in the JSON only
                continue
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        print("  ".join(parts), flush=True)
    if records:
        print(f"device: {records[0].device}")


CASES: dict[str, Callable[[BenchArgs], list[Record]]] = {
    "envs": bench_envs,
    "update": bench_update,
    "planner": bench_planner,
    "sweep": bench_sweep,
    "episode": bench_episode,
    "cycle": bench_cycle,
    "replay": bench_replay,
}


Case = Literal["envs", "update", "planner", "sweep", "episode", "cycle", "replay", "all"]


@dataclasses.dataclass(frozen=True)
class BenchArgs:
    """Benchmarks: `python -m planet_jax.bench CASE --preset paper [--json FILE]`."""

    case: tyro.conf.Positional[Case]
    """What to measure (`all`: every case in turn)."""
    preset: Literal["paper", "small", "quick", "debug"] = "paper"
    """Config preset the cases start from."""
    task: str = "cheetah-run"
    """Task (its action and observation sizes, and the simulator for envs / episode / cycle)."""
    obs: Literal["pixels", "state"] | None = None
    """Override the preset's observations."""
    json: str | None = None
    """Write the records to this file."""
    repeats: int = 5
    """Timed calls per case after the first (which compiles)."""
    matmul_size: int | None = None
    """Side of the square float32 matmul whose rate each case is read against (default 2048 on CPU, 8192 else)."""
    steps: int = 50
    """Env steps per repeat (envs)."""
    envs: tuple[int, ...] | None = None
    """Batch sizes of environments (envs, planner)."""
    env_workers: tuple[int, ...] = ()
    """envs: also step in this many worker processes."""
    batch: tuple[int, ...] | None = None
    """Batch sizes B of the update."""
    seeds: tuple[int, ...] | None = None
    """Agent counts N (sweep; default 1 2 4 8)."""
    long_repeats: int = 2
    """Timed episodes / cycles after the first."""
    train_steps: int | None = None
    """Override C, updates per cycle (cycle, sweep)."""
    updates_per_call: int | None = None
    """Override updates per compiled call."""
    episode_steps: int | None = None
    """Override simulator steps per episode."""
    stored: int = 200
    """replay: synthetic episodes stored."""
    stored_in_memory: bool = True
    """replay: also measure the same episodes held in memory (needs their size in RAM)."""
    replay_dir: str | None = None
    """replay: where to write the store (default: $TMPDIR)."""
    agent_axis: Literal["auto", "vmap", "map"] | None = None
    """Override agent_axis (sweep)."""
    set: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """Override any config field, NAME=VALUE, e.g. --set reward_units=200 (repeatable; recorded as 'overrides')."""


_BOUNDS = {"repeats": 1, "matmul_size": 1, "steps": 1, "envs": 1, "env_workers": 1, "batch": 1, "seeds": 1,
           "long_repeats": 1, "train_steps": 1, "updates_per_call": 1, "episode_steps": 1, "stored": 1}  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> BenchArgs:
    return cli.parse(BenchArgs, argv, prog="python -m planet_jax.bench", bounds=_BOUNDS, positional=[("case", Case)])


def main(argv=None) -> int:
    args = parse_args(argv)
    from planet_jax.config import ConfigError

    try:
        _bench_config(args)  # refuse bad overrides before anything is compiled
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cases = list(CASES) if args.case == "all" else [args.case]
    records: list[Record] = []
    for case in cases:
        print(f"-- {case}", flush=True)
        found = CASES[case](args)
        _print(found)  # as each case finishes: `all` takes a while
        records += found
    if args.json:
        write_json(args.json, [r.to_json() for r in records])
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
