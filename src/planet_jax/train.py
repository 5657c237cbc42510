"""`python -m planet_jax.train --task TASK [--preset paper|small|debug] [--logdir DIR] [overrides]`.

The PlaNet loop for N seeds at once (`--num-seeds`, default 1): S episodes of random
actions, then repeat: C gradient updates on chunks sampled from each seed's own replay,
then one episode collected with the planner plus exploration noise. Every `test_every`
episodes, `test_episodes` noise-free episodes with distinct environment seeds.

One compiled `update` and one compiled `act` serve all seeds (vmapped over a leading
seed axis). Environment stepping and the replay stay on the host as numpy.

Everything random is derived from the seed and the episode count (environment resets,
exploration, chunk sampling) or lives in the checkpointed `TrainState` (update keys), so
re-running the same command in the same run directory resumes from the newest checkpoint
and produces the same numbers as a run that never stopped. SIGINT and SIGTERM finish the
current episode, save a checkpoint and exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Literal

from planet_jax.ops import hostmem  # standard library only

if __name__ == "__main__":  # before JAX loads: see planet_jax.ops.hostmem
    hostmem.reexec_with_malloc_settings()

import jax
import numpy as np

from planet_jax import cli, sweeps
from planet_jax import config as C
from planet_jax.agent import programs
from planet_jax.agent.acting import PlannerPolicy, RandomPolicy, fold, rollout
from planet_jax.cli import fail
from planet_jax.config import Config, ConfigError
from planet_jax.io import rundir
from planet_jax.io.logger import MetricsLog, learning_summary, mean_and_stderr, plot_curves, write_json
from planet_jax.io.replay import Replay
from planet_jax.io.rundir import RunDirError
from planet_jax.ops import backends, compiler, distributed

log = logging.getLogger("planet_jax")


class NonFiniteError(RuntimeError):
    """The loss or the gradients became NaN or Inf."""


LOSS_TERMS = ("image_loss", "reward_loss", "kl_loss", "loss", "grad_norm")


def check_finite(
    metrics: dict, steps_after: np.ndarray, seeds: list[int], checkpoints: Callable[[], list[int]]
) -> None:
    """Raise NonFiniteError naming the first update step and loss term that went non-finite.

    metrics: arrays [N, C] of one update call; steps_after: [N] update counters after it;
    checkpoints: lists the saved steps (a disk listing, so it is called only on failure).
    """
    finite = np.asarray(metrics["finite"])
    if finite.all():
        return
    seed_index, index = map(int, np.argwhere(~finite)[0])
    step = int(steps_after[seed_index]) - finite.shape[1] + index + 1
    saved = checkpoints()
    terms = [t for t in LOSS_TERMS if not np.isfinite(metrics[t][seed_index, index])]
    named = ", ".join("gradients" if t == "grad_norm" else t for t in terms)
    kept = f"the last good checkpoint (episode {saved[-1]}) is kept" if saved else "no checkpoint was written yet"
    raise NonFiniteError(
        f"non-finite {named} at update step {step} of seed {seeds[seed_index]}; stopping, {kept}. "
        "Pass --skip-nonfinite to skip such updates instead (they are counted in the metrics)."
    )


# ----------------------------------------------------------------------------------------
# Command line.


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """Train PlaNet agents on a DeepMind Control Suite task."""

    config: Config
    preset: Literal["paper", "small", "quick", "debug"] = "paper"
    """Defaults to start from; every config field below overrides them."""
    logdir: str = ""
    """Run directory; re-running with the same one resumes. Default: runs/TASK-OBS-PRESET-seedSEED."""
    progress: bool = True
    """Show a progress bar."""
    fresh: bool = False
    """If LOGDIR already holds a run, start a new one in LOGDIR-1 (or -2, ...) instead of resuming."""
    wandb: bool = False
    """Mirror metrics (and evaluate's videos) to Weights & Biases; WANDB_MODE=offline writes them under LOGDIR/wandb for a later `wandb sync`."""
    wandb_project: str = "planet_jax"
    """W&B project of a new run (a resumed run keeps its own, from LOGDIR/wandb.json)."""
    wandb_entity: str = ""
    """W&B entity (user or team) of a new run; default: your W&B default."""
    compile_cache: bool = True
    """Keep compiled programs in JAX's persistent cache (~/.cache/planet_jax/xla, or $PLANET_JAX_CACHE), so that resuming or evaluating a run does not compile it again."""
    distributed: bool = False
    """Run as one of several processes (hosts) sharing the agents: see README, "Several hosts"."""
    coordinator_address: str = ""
    """With --distributed: HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS or cluster detection)."""
    num_processes: int = 0
    """With --distributed: how many processes (default: $JAX_NUM_PROCESSES or cluster detection)."""
    process_id: int = -1
    """With --distributed: this process's index, 0 first (default: $JAX_PROCESS_ID or cluster detection)."""


# Lower bounds of the command's own integer fields (config fields are checked by C.validate).
_ARG_BOUNDS = {"num_processes": 0, "process_id": -1}


def _groups() -> list[type]:
    return [TrainArgs] + [f.default_factory for f in dataclasses.fields(Config)]  # type: ignore[misc]


def check_argv(argv: Sequence[str]) -> None:
    """`cli.check_argv` for this command: its own fields and every config field."""
    cli.check_argv(argv, _groups(), bounds=_ARG_BOUNDS)


def parse_args(argv: Sequence[str] | None = None, *, prog: str = "python -m planet_jax.train") -> TrainArgs:
    """Parse `--preset` first (it sets the defaults), then every config field by name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv(argv)
    except ConfigError as exc:
        fail(str(exc))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=C.PRESETS, default="paper")
    known, _ = pre.parse_known_args(argv)
    default = TrainArgs(config=C.preset(known.preset), preset=known.preset)
    args = cli.parse(TrainArgs, argv, prog=prog, default=default, groups=_groups()[1:], bounds=_ARG_BOUNDS)
    if not args.logdir:
        c = args.config
        name = f"{c.env.task}-{c.env.obs}-{args.preset}-seed{c.train.seed}"
        args = dataclasses.replace(args, logdir=os.path.join("runs", name))
    if args.fresh and os.path.exists(os.path.join(args.logdir, "config.json")):
        suffix = 1
        while os.path.exists(f"{args.logdir}-{suffix}"):
            suffix += 1
        args = dataclasses.replace(args, logdir=f"{args.logdir}-{suffix}")
    return args


# ----------------------------------------------------------------------------------------
# The training loop.


@dataclasses.dataclass
class Counters:
    """Where a run stands, checkpointed with its state (the checkpoint's meta): training
    episodes and environment steps so far, and test phases run (each phase's episodes are
    seeded by its index, so a resumed run tests on the same ones)."""

    episodes: int = 0
    env_steps: int = 0
    test_phase: int = 0

    def to_meta(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict) -> Counters:
        return cls(**{f.name: int(meta[f.name]) for f in dataclasses.fields(cls)})


class _NoLog:
    """The metrics log of processes other than 0: they leave the shared files to it."""

    def write(self, record: dict, *, step: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class Trainer:
    """Owns the environments, replays, state and logs of one run directory.

    With several processes (`--distributed`), every process builds a Trainer for the same
    run directory; each steps the environments and keeps the replays of its own share of
    the agents (`self.mine`), and process 0 alone writes the config, logs and summary.
    """

    def __init__(self, cfg: Config, logdir: str, *, progress: bool = True, wandb: dict | None = None):
        from planet_jax.io.checkpoint import Checkpointer
        from planet_jax.io.envs import env_seed, make_batch_env

        self.cfg, self.logdir, self.progress = cfg, logdir, progress
        t = cfg.train
        self.rows = sweeps.rows(cfg)
        self.seeds = [seed for seed, _ in self.rows]  # of every agent
        self.primary = distributed.is_primary()
        self.programs = programs.compiled(cfg)
        self.sharding = self.programs.sharding
        self.mine = distributed.share(len(self.rows))  # the agents this process steps
        self.my_seeds = self.seeds[self.mine.start : self.mine.stop]
        self.sweep = bool(t.sweep)
        self.env_seed = env_seed
        # Another run's episodes to train on (`--replay-from`), never written to.
        self.sources = rundir.source_replays(cfg, logdir, self.mine) if t.replay_from else None
        if self.primary:
            rundir.prepare_logdir(cfg, logdir)
        distributed.sync("config written")
        if not self.primary:
            rundir.prepare_logdir(cfg, logdir)  # only checks: process 0 wrote it
        self.ckpt = Checkpointer(os.path.join(logdir, "checkpoints"), keep=t.keep_checkpoints)
        self.keys = programs.seed_keys(cfg)[self.mine.start : self.mine.stop]
        e = cfg.env.envs_per_seed
        # Seeds of these env objects do not matter: every episode resets with its own seed.
        self.train_envs = None
        if t.collect:
            self.train_envs = make_batch_env(
                cfg, [env_seed(s, "train", 10**6 + j) for s in self.my_seeds for j in range(e)]
            )
        self.test_envs = None
        self.stop_signal: int | None = None

        replay_dirs = [os.path.join(logdir, "replay", sweeps.row_name(cfg, r)) for r in self.mine]
        if self.sweep and self.primary:
            write_json(
                os.path.join(logdir, "rows.json"),
                [
                    {"row": r, "name": sweeps.row_name(cfg, r), "seed": seed, **hyper}
                    for r, (seed, hyper) in enumerate(self.rows)
                ],
            )
        # Every intact episode on disk; a damaged file ends its seed's list (and is set aside).
        self.replays = [Replay.load(d) for d in replay_dirs]
        if self.sources is not None:
            rundir.pin_sources(cfg, logdir, self.mine, self.sources)
        if t.collect:
            rundir.check_disk(cfg, os.path.join(logdir, "replay"), [len(r) for r in self.replays])
        intact = distributed.gather(np.array([len(r) for r in self.replays])).tolist()  # of every agent
        if self.ckpt.steps():
            target = jax.eval_shape(programs.initializer(cfg))
            # The newest intact checkpoint whose episodes are all still intact on disk.
            self.state, meta, step = self.ckpt.restore(
                target,
                accept=lambda meta: all(k <= n for k, n in zip(meta["replay_episodes"], intact, strict=True)),
                sharding=self.sharding,
            )
            self.counters = Counters.from_meta(meta)
            counts = meta["replay_episodes"][self.mine.start : self.mine.stop]
            self.resumed_from = step
        else:
            self.state = programs.fresh_state(cfg)
            self.counters = Counters()
            counts = [0] * len(self.replays)
            self.resumed_from = None
        # Episodes written after the checkpoint will be collected again, identically.
        for replay, count in zip(self.replays, counts, strict=True):
            replay.truncate(count)
        if self.primary:
            MetricsLog.truncate(logdir, self.counters.episodes)
            mirrors = []
            if wandb is not None:  # {"project": ..., "entity": ...}
                from planet_jax.io.tracking import Wandb

                mirrors.append(Wandb(logdir, C.to_dict(cfg), **wandb))
            self.metrics = MetricsLog(logdir, purge_step=self.counters.episodes + 1, mirrors=mirrors)
        else:
            self.metrics = _NoLog()
        self.last = {"train_return": float("nan"), "test_return": float("nan"), "updates_per_s": 0.0, "plan_ms": 0.0}
        self.plotted = -1  # how many metric records curve.png shows

    def put(self, tree):
        """This process's agents' arrays [n, ...] -> on the devices (split over them if several;
        global arrays over all processes with `--distributed`)."""
        if self.sharding is None:
            return tree
        return distributed.to_global(tree, self.sharding)

    def row_fields(self, i: int) -> dict:
        """What identifies agent i in the metrics: its seed, and within a sweep its combination."""
        seed, hyper = self.rows[i]
        if not self.sweep:
            return {"seed": seed}
        combo = sweeps.combos(self.cfg)[i // self.cfg.train.num_seeds]
        return {"seed": seed, "row": i, "combo": ",".join(f"{k}={hyper[k]:g}" for k in combo), **combo}

    # -- pieces of one cycle ------------------------------------------------------------

    def _episode_seeds(self, purpose: str, index: int, count: int) -> list[int]:
        return [self.env_seed(s, purpose, index * count + j) for s in self.my_seeds for j in range(count)]

    def collect_random(self) -> list[dict]:
        e, a = self.cfg.env.envs_per_seed, self.cfg.action_size
        policy = RandomPolicy(self.my_seeds, self.counters.episodes, e, a)
        return rollout(self.train_envs, self._episode_seeds("train", self.counters.episodes, e), policy, a)

    def collect_planner(self) -> tuple[list[dict], PlannerPolicy]:
        e = self.cfg.env.envs_per_seed
        keys = jax.vmap(lambda k: fold(k, 2, self.counters.episodes))(self.keys)
        policy = PlannerPolicy(self.programs.act_explore, self.state, self.cfg, e, keys, self.put)
        episodes = rollout(
            self.train_envs, self._episode_seeds("train", self.counters.episodes, e), policy, self.cfg.action_size
        )
        return episodes, policy

    def train_cycle(self) -> dict:
        """C gradient updates per seed, in calls of `updates_per_call`; returns mean metrics [R] of every agent."""
        t = self.cfg.train
        calls = t.train_steps // t.updates_per_call
        start = time.perf_counter()
        history = []
        batches = self._batches(0)
        for call in range(calls):
            self.state, metrics = self.programs.update(self.state, self.put(batches))
            # The update runs asynchronously: sample the next call's batches meanwhile (on a
            # GPU, tens of milliseconds of host copies per call for pixel batches).
            batches = self._batches(call + 1) if call + 1 < calls else None
            if not t.skip_nonfinite:
                # Every process sees every agent's metrics, so all of them stop together.
                finite, steps = distributed.gather((metrics, self.state.step))
                check_finite(finite, steps, self.seeds, self.ckpt.steps)
            history.append(metrics)
        metrics = {k: np.concatenate([m[k] for m in distributed.gather(history)], 1) for k in history[0]}
        elapsed = time.perf_counter() - start
        finite = metrics.pop("finite")  # [N, C]
        skipped = metrics.pop("skipped").sum(1)
        # Means over the finite steps (all of them unless skip_nonfinite dropped some); NaN
        # for an agent whose every step was skipped, which has no loss to report.
        kept = finite.sum(1)
        out = {
            k: np.where(kept > 0, np.where(finite, v, 0).sum(1) / np.maximum(kept, 1), np.nan)
            for k, v in metrics.items()
        }  # [N]
        out["skipped_updates"] = skipped
        out["update_seconds"] = np.full(len(self.seeds), elapsed)
        self.last["updates_per_s"] = t.train_steps / elapsed
        return out

    def _batches(self, call: int) -> dict[str, np.ndarray]:
        """This process's seeds' batches for update call `call` of this cycle: arrays
        [N, updates_per_call, B, L, ...], each seed's drawn with its own generator seeded by
        (seed, episode, call), so that a resumed run draws the same ones."""
        t = self.cfg.train
        pools = self.replays
        if self.sources is not None:  # the source's episodes first, then those collected here
            pools = [Replay.union(src, own) for src, own in zip(self.sources, self.replays, strict=True)]
        out = pools[0].empty_batch((len(pools), t.updates_per_call), t.batch_size, t.chunk_length)
        for i, (replay, seed) in enumerate(zip(pools, self.my_seeds, strict=True)):
            rng = np.random.default_rng([seed, 3, self.counters.episodes, call])
            for j in range(t.updates_per_call):
                replay.sample(rng, t.batch_size, t.chunk_length, out={k: v[i, j] for k, v in out.items()})
        return out

    def store(self, episodes: list[dict]) -> None:
        """Add one collected episode per environment (E per agent, in agent order) to the
        replays, and count them."""
        cfg, e = self.cfg, self.cfg.env.envs_per_seed
        for i, replay in enumerate(self.replays):
            for ep in episodes[i * e : (i + 1) * e]:
                replay.add(ep)
        # Simulator steps per agent (the most of any agent, so that every process counts
        # the same): an early end shortens an episode.
        steps = np.array(
            [
                sum(
                    min((len(ep["reward"]) - 1) * cfg.action_repeat, cfg.env.episode_steps)
                    for ep in episodes[i * e : (i + 1) * e]
                )
                for i in range(len(episodes) // e)
            ]  # fmt: skip
        )
        self.counters.episodes += e
        self.counters.env_steps += int(distributed.gather(steps).max())

    def test(self) -> np.ndarray:
        """Noise-free episodes with distinct seeds; returns returns [R, test_episodes] of every agent."""
        from planet_jax.io.envs import make_batch_env

        k = self.cfg.train.test_episodes
        if self.test_envs is None:
            self.test_envs = make_batch_env(
                self.cfg, [self.env_seed(s, "test", 10**6 + j) for s in self.my_seeds for j in range(k)]
            )
        keys = jax.vmap(lambda key: fold(key, 4, self.counters.test_phase))(self.keys)
        policy = PlannerPolicy(self.programs.act_test, self.state, self.cfg, k, keys, self.put)
        episodes = rollout(
            self.test_envs, self._episode_seeds("test", self.counters.test_phase, k), policy, self.cfg.action_size
        )
        returns = np.array([ep["reward"].sum() for ep in episodes]).reshape(len(self.my_seeds), k)
        self.counters.test_phase += 1
        return distributed.gather(returns)

    def save(self) -> None:
        meta = {
            **self.counters.to_meta(),
            "replay_episodes": distributed.gather(np.array([len(r) for r in self.replays])).tolist(),
            "time": time.time(),
        }
        self.ckpt.save(self.counters.episodes, self.state, meta)

    # -- the loop -------------------------------------------------------------------------

    def _on_signal(self, signum, frame):
        if self.stop_signal is not None:  # a second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.stop_signal = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing the current episode, then saving a checkpoint "
            "(press Ctrl-C again to stop at once).",
            file=sys.stderr,
            flush=True,
        )

    def stopping(self) -> bool:
        """Whether a signal asked to stop (in any process: they all stop at the same episode)."""
        if jax.process_count() == 1:
            return self.stop_signal is not None
        return bool(distributed.gather(np.array([self.stop_signal is not None])).any())

    def say(self, message: str) -> None:
        if self.primary:
            print(message, flush=True)

    def run(self) -> dict:
        from tqdm import tqdm

        t = self.cfg.train
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if self.resumed_from is not None:
            self.say(f"resumed {self.logdir} from the checkpoint at episode {self.resumed_from}")
        bar = tqdm(
            total=t.episodes,
            initial=self.counters.episodes,
            unit="ep",
            disable=not (self.progress and self.primary),
            dynamic_ncols=True,
            file=sys.stdout,
        )
        run_start = time.time()
        try:
            while self.counters.episodes < t.episodes and not self.stopping():
                self.cycle(bar)
            interrupted = self.stopping()
            saved = self.ckpt.steps()
            if not saved or saved[-1] != self.counters.episodes:
                self.save()
        finally:
            bar.close()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return self.finish(run_start, interrupted)

    def cycle(self, bar) -> None:
        cfg, t = self.cfg, self.cfg.train
        if not t.collect:
            self.offline_cycle(bar)
            return
        e = cfg.env.envs_per_seed
        record: dict = {}
        policy_name = "planner"
        if self.counters.episodes < t.seed_episodes and self.sources is None:
            episodes = self.collect_random()
            plan_ms = None
            policy_name = "random"
        else:
            record.update(self.train_cycle())
            episodes, policy = self.collect_planner()
            plan_ms = 1e3 * policy.seconds / max(policy.calls, 1)
            self.last["plan_ms"] = plan_ms
        self.store(episodes)
        returns = distributed.gather(np.array([ep["reward"].sum() for ep in episodes]).reshape(-1, e))  # [n, e]
        self.last["train_return"] = float(returns.mean())
        for i in range(len(self.rows)):
            common = {"episode": self.counters.episodes, "env_steps": self.counters.env_steps, **self.row_fields(i)}
            self.metrics.write(
                {"kind": "train_episode", **common, "return": float(returns[i].mean()), "policy": policy_name},
                step=self.counters.episodes,
            )
            if "loss" in record:
                update = {k: float(v[i]) for k, v in record.items()}
                update["plan_ms_per_action"] = plan_ms
                self.metrics.write({"kind": "update", **common, **update}, step=self.counters.episodes)
        self.end_cycle(bar, e)

    def offline_cycle(self, bar) -> None:
        """One cycle without collecting (`collect=false`): C updates on the replay, counted as
        one "episode" of the schedule; no environment steps."""
        record = self.train_cycle()
        self.counters.episodes += 1
        for i in range(len(self.rows)):
            common = {"episode": self.counters.episodes, "env_steps": self.counters.env_steps, **self.row_fields(i)}
            self.metrics.write(
                {"kind": "update", **common, **{k: float(v[i]) for k, v in record.items()}}, step=self.counters.episodes
            )
        self.end_cycle(bar, 1)

    def end_cycle(self, bar, step: int) -> None:
        """The test phase and checkpoint due after a cycle of `step` episodes per agent."""
        t, n = self.cfg.train, len(self.seeds)  # n: agents in all processes
        if self.counters.episodes % t.test_every < step or self.counters.episodes >= t.episodes:
            test_returns = self.test()
            for i in range(len(self.rows)):
                self.metrics.write(
                    {
                        "kind": "test",
                        "episode": self.counters.episodes,
                        "env_steps": self.counters.env_steps,
                        **self.row_fields(i),
                        "return": float(test_returns[i].mean()),
                        "returns": test_returns[i].tolist(),
                    },
                    step=self.counters.episodes,
                )
            mean, se = mean_and_stderr(test_returns.mean(1))
            self.last["test_return"] = mean
            if self.primary:
                bar.write(
                    f"test  episode {self.counters.episodes:5d}  env steps {self.counters.env_steps:8d}  return {mean:8.1f}"
                    + (f" +- {se:.1f} (s.e., {n} seeds)" if n > 1 else f"  ({t.test_episodes} episodes)")
                )
                self.plot(MetricsLog.read(self.logdir))
        if self.counters.episodes % t.checkpoint_every < step:
            self.save()
        # The postfix first, so that update's redraw shows this cycle's figures.
        bar.set_postfix(
            {
                "env_steps": str(self.counters.env_steps),
                "train_ret": f"{self.last['train_return']:.1f}",
                "test_ret": f"{self.last['test_return']:.1f}",
                "updates/s": f"{self.last['updates_per_s']:.2f}",
                "plan_ms/act": f"{self.last['plan_ms']:.0f}",
            },
            refresh=False,
        )
        bar.update(step)

    def plot(self, records: list[dict]) -> None:
        """Redraw curve.png, unless it already shows these records (a run ending on a test)."""
        if len(records) != self.plotted:
            plot_curves(records, self.cfg.env.task, os.path.join(self.logdir, "curve.png"))
            self.plotted = len(records)

    def close(self) -> None:
        """Release the log, checkpoint manager and environments."""
        self.metrics.close()
        self.ckpt.close()
        if self.train_envs is not None:
            self.train_envs.close()
        if self.test_envs is not None:
            self.test_envs.close()

    def finish(self, run_start: float, interrupted: bool) -> dict:
        checkpoints = self.ckpt.steps()
        self.close()
        distributed.sync("run finished")
        if not self.primary:
            return {
                "logdir": os.path.abspath(self.logdir),
                "episodes": self.counters.episodes,
                "checkpoints": checkpoints,
            }
        records = MetricsLog.read(self.logdir)
        self.plot(records)
        tests = [r for r in records if r["kind"] == "test"]
        last = [r["return"] for r in tests if r["episode"] == max((x["episode"] for x in tests), default=-1)]
        learned = learning_summary(records)
        summary = {
            "logdir": os.path.abspath(self.logdir),
            "episodes": self.counters.episodes,
            "env_steps": self.counters.env_steps,
            "interrupted": interrupted,
            "last_test_return_mean": mean_and_stderr(last)[0] if last else None,
            "last_test_return_stderr": mean_and_stderr(last)[1] if last else None,
            "first_test": learned["first_test"],
            "random_return_mean": learned["random_return"],
            "checkpoints": checkpoints,
            "processes": jax.process_count(),
            "backend": backends.backend(),
            "platform": backends.choices(self.cfg),  # every `auto` setting as it ran
            "matmul_precision": compiler.resolved_precision(self.cfg),
            "seconds_this_session": time.time() - run_start,
        }
        write_json(os.path.join(self.logdir, "summary.json"), summary)
        what = "interrupted" if interrupted else "done"
        print(
            f"{what}: {self.counters.episodes} episodes, {self.counters.env_steps} env steps{describe_learning(learned)}\n"
            f"  run directory  {summary['logdir']}\n"
            f"  config         config.json\n  metrics        metrics.jsonl, tensorboard/\n"
            f"  curve          curve.png\n  replay         replay/\n  checkpoints    checkpoints/ {summary['checkpoints']}\n"
            + ("  resume         re-run the same command\n" if interrupted else "")
            + f"  evaluate       python -m planet_jax.evaluate --logdir {self.logdir}",
            flush=True,
        )
        return summary


def describe_learning(learned: dict) -> str:
    """The end-of-run line's account of learning: first and last test return beside random actions."""

    def phase(p):
        episode, mean, se = p
        return f"{mean:.1f}" + (f" +- {se:.1f}" if se else "") + f" (episode {episode})"

    if learned["last_test"] is None:
        return "; no test phase yet"
    text = "; test return "
    if learned["first_test"][0] != learned["last_test"][0]:
        text += phase(learned["first_test"]) + " -> "
    text += phase(learned["last_test"])
    if learned["random_return"] is not None:
        text += f"; random actions {learned['random_return']:.1f} (seed episodes)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        cfg = C.validate(args.config)
    except ConfigError as exc:
        fail(str(exc))
    if args.distributed:
        if args.fresh:
            fail(
                "--fresh cannot be combined with --distributed (the processes could pick different directories); "
                "pass a new --logdir instead"
            )
        try:
            distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
        except RuntimeError as exc:
            fail(str(exc), code=1)
    compiler.use_compilation_cache(args.compile_cache)
    from planet_jax.io.checkpoint import CheckpointError
    from planet_jax.io.envs import EnvWorkerError
    from planet_jax.io.replay import ReplayError

    if args.fresh and distributed.is_primary():
        print(f"starting a new run in {args.logdir}", flush=True)
    try:
        rundir.check_replay_from(cfg.train.replay_from, args.logdir)
        rundir.check_wandb(args.wandb)
        rundir.check_logdir(args.logdir)
        wandb = {"project": args.wandb_project, "entity": args.wandb_entity} if args.wandb else None
        trainer = Trainer(cfg, args.logdir, progress=args.progress, wandb=wandb)
    except (RunDirError, ConfigError) as exc:
        fail(str(exc))
    except RuntimeError as exc:  # no GL backend, no intact checkpoint, ...
        fail(str(exc), code=1)
    try:
        trainer.run()
    except NonFiniteError as exc:
        fail(str(exc), code=1)
    except EnvWorkerError as exc:
        fail(
            f"{exc}\nThe checkpoints and episodes written before stay intact: re-run the same command to resume "
            "from the newest checkpoint.",
            code=1,
        )
    except (OSError, ReplayError, CheckpointError) as exc:  # a full disk, most likely
        fail(
            f"{exc}\nThe checkpoints and episodes written before stay intact: free space (or fix the run "
            "directory) and re-run the same command to resume from the newest checkpoint.",
            code=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
