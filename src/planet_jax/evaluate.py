"""`python -m planet_jax.evaluate --logdir DIR [--step S] [--episodes N] [--seed-index I]`.

Restores a checkpoint of a training run (the newest by default) for evaluation only,
runs noise-free episodes with environment seeds that training never used, prints and
writes mean, std and per-episode returns, and writes videos:
  - `episode-K.mp4`: the agent's episodes;
  - `openloop.mp4` (pixel runs): 5 context frames through the posterior, then the prior
    alone under the episode's real actions: truth | prediction | error, side by side,
    as the official implementation reports.
Everything goes to DIR/eval/step-S/ (seed i of a sweep: DIR/eval/step-S/seed-i/).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence

from planet_jax.ops import hostmem  # standard library only

if __name__ == "__main__":  # before JAX loads: see planet_jax.ops.hostmem
    hostmem.reexec_with_malloc_settings()

import jax
import jax.numpy as jnp
import numpy as np

from planet_jax import cli, sweeps
from planet_jax.agent import Agent, load_run  # noqa: F401  (load_run: also imported from here)
from planet_jax.io.checkpoint import CheckpointError
from planet_jax.io.logger import write_json, write_video
from planet_jax.model import rssm
from planet_jax.ops import rng

CONTEXT = 5


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a trained PlaNet run: noise-free episodes on unseen seeds, and videos."""

    logdir: str
    """Run directory written by planet_jax.train."""
    step: int | None = None
    """Checkpoint step (episodes done); default: the newest."""
    episodes: int = 10
    """Noise-free evaluation episodes per agent."""
    seed_index: int | None = None
    """Which agent (row) of a sweep; default: all."""
    videos: int = 1
    """Episodes to film per agent."""
    openloop_steps: int = 50
    """Prior-only prediction steps in openloop.mp4."""
    wandb: bool = False
    """Also log the returns and videos to the run's W&B run (LOGDIR/wandb.json; see train --wandb)."""
    wandb_project: str = "planet_jax"
    """W&B project if the run has no W&B run yet."""
    compile_cache: bool = True
    """Use JAX's persistent compilation cache (see train)."""


_BOUNDS = {"step": 0, "episodes": 1, "seed_index": 0, "videos": 0, "openloop_steps": 0}


def parse_args(argv: Sequence[str] | None = None) -> EvalArgs:
    return cli.parse(EvalArgs, argv, prog="python -m planet_jax.evaluate", bounds=_BOUNDS)


def openloop_video(cfg, params, obs: np.ndarray, actions: np.ndarray, key: jax.Array, steps: int) -> np.ndarray:
    """Truth | prediction | error frames of one pixel episode: uint8 [T', 64, 3*64, 3].

    obs: [T, 64, 64, 3] uint8 the episode's frames o_0..o_{T-1}; actions: [T, A] with
    actions[t] = a_{t-1} (the replay convention, actions[0] = 0). The first CONTEXT
    predictions are posterior reconstructions from o_0..o_4, the next `steps` are the
    prior alone under the real actions a_4, a_5, ...; T' = min(CONTEXT + steps, T).
    """
    from planet_jax.model.networks import Modules
    from planet_jax.model.preprocess import postprocess, prepare_obs

    if obs.shape[0] != actions.shape[0]:
        raise ValueError(f"obs and actions must have the same length, got {obs.shape[0]} and {actions.shape[0]}.")
    mods = Modules(cfg)
    total = min(CONTEXT + steps, obs.shape[0])
    context = min(CONTEXT, total)
    k_pre, k_obs, k_img = jax.random.split(key, 3)
    x = prepare_obs(jnp.asarray(obs[None, :context]), k_pre, pixels=True, bits=cfg.env.image_bits)
    embeds = mods.encoder.apply({"params": params["encoder"]}, x)
    posts, _ = rssm.observe(params["cell"], embeds, jnp.asarray(actions[None, :context]), k_obs, cfg=cfg)
    features = posts.features
    if total > context:
        last = jax.tree.map(lambda a: a[:, -1], posts)
        priors = rssm.imagine(params["cell"], last, jnp.asarray(actions[None, context:total]), k_img, cfg=cfg)
        features = jnp.concatenate([features, priors.features], 1)
    pred = np.asarray(postprocess(mods.decoder.apply({"params": params["decoder"]}, features), cfg.env.image_bits)[0])
    truth = obs[:total]
    error = np.abs(truth.astype(np.int16) - pred.astype(np.int16)).astype(np.uint8)
    return np.concatenate([truth, pred, error], axis=2)


def evaluate(
    logdir: str,
    step: int | None,
    episodes: int,
    seed_index: int | None,
    videos: int,
    openloop_steps: int,
    tracker=None,
):
    """Evaluate agents of a run's checkpoint; `tracker` (a `tracking.Wandb`) also gets the
    returns and videos, at the checkpoint's episode."""
    from planet_jax.io.envs import env_seed, make_batch_env

    cfg, state, step = load_run(logdir, step)
    rows = sweeps.rows(cfg)
    n = len(rows)
    indices = range(n) if seed_index is None else [seed_index]
    if seed_index is not None and not 0 <= seed_index < n:
        raise CheckpointError(f"--seed-index must be in 0..{n - 1} for this run of {n} agents, got {seed_index}.")
    results = {}
    for i in indices:
        seed = rows[i][0]
        agent = Agent(cfg, jax.tree.map(lambda x, i=i: x[i], state.params), seed=seed, step=step)
        params = agent.params
        seeds = [env_seed(seed, "eval", j) for j in range(episodes)]
        envs = make_batch_env(cfg, seeds)
        obs = envs.reset(seeds)
        agent.reset(batch=episodes)
        frames = [[envs.render(j, 64)] for j in range(min(videos, episodes))]
        # Episode 0's frames and the actions that led to them, for openloop.mp4 (a_{-1} = 0).
        traj = {"obs": [obs[0]], "action": [np.zeros(cfg.action_size, np.float32)]}
        returns, filming = np.zeros(episodes), True
        for _ in range(envs.episode_length):
            action = agent.act(obs)
            obs, reward, done = envs.step(action)
            returns += reward  # 0 from an environment whose episode has ended
            if filming:  # episode 0 up to its own end
                traj["obs"].append(obs[0])
                traj["action"].append(action[0])
                filming = not done[0]
            for j, f in enumerate(frames):
                f.append(envs.render(j, 64))
            if done.all():
                break
        envs.close()
        out = os.path.join(logdir, "eval", f"step-{step}") + (f"/{sweeps.row_name(cfg, i)}" if n > 1 else "")
        os.makedirs(out, exist_ok=True)
        films = {}  # W&B key -> (path, fps)
        for j, f in enumerate(frames):
            films[f"episode-{j}"] = (write_video(os.path.join(out, f"episode-{j}.mp4"), np.stack(f)), 20)
        if cfg.env.obs == "pixels":
            obs0, actions0 = np.stack(traj["obs"]), np.stack(traj["action"])
            video = openloop_video(cfg, params, obs0, actions0, rng.key(0), openloop_steps)
            films["openloop"] = (write_video(os.path.join(out, "openloop.mp4"), video, fps=10, scale=3), 10)
        record = {
            "step": step,
            "seed": seed,
            "episodes": episodes,
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "returns": returns.tolist(),
        }
        write_json(os.path.join(out, "returns.json"), record)
        if tracker is not None:
            tag = f"eval/{sweeps.row_name(cfg, i)}"
            tracker.run.log({"episode": step, f"{tag}/mean": record["mean"], f"{tag}/std": record["std"]})
            for name, (path, fps) in films.items():
                if path.endswith(".mp4"):  # not the frames-only fallback without ffmpeg
                    tracker.video(f"{tag}/{name}", path, step, fps=fps)
        print(
            f"seed {seed} step {step}: return {record['mean']:.1f} +- {record['std']:.1f} (std over {episodes} episodes)"
            f"\n  returns {np.round(returns, 1).tolist()}\n  written to {out}",
            flush=True,
        )
        results[seed] = record
    return results


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from planet_jax.ops import compiler

    compiler.use_compilation_cache(args.compile_cache)
    tracker = None
    try:
        if args.wandb:
            from planet_jax.io.tracking import TrackingError, Wandb

            if not os.path.exists(os.path.join(args.logdir, "config.json")):
                raise CheckpointError(f"{args.logdir} holds no run (no config.json).")
            with open(os.path.join(args.logdir, "config.json")) as f:
                try:
                    tracker = Wandb(args.logdir, json.load(f), project=args.wandb_project, job="evaluate")
                except TrackingError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
        evaluate(args.logdir, args.step, args.episodes, args.seed_index, args.videos, args.openloop_steps, tracker)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tracker is not None:
            tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
