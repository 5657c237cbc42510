"""Environments on the host, with action repeat: the Control Suite, Gymnasium, your own.

Every environment has one interface (`Environment`): actions in [-1, 1] (rescaled to the
environment's bounds), the reward summed over the repeated simulator steps, at most
`episode_steps` simulator steps per episode (fewer when the environment terminates), and
observations that are either 64x64x3 uint8 frames or a flat float32 state vector.
`ControlEnv` wraps any DeepMind Control Suite task (frames rendered at 64x64 from a chosen
camera, 0 as in the paper), `GymEnv` a Gymnasium environment with a `Box` action space
(frames from `render_mode="rgb_array"`, resized with Pillow), and `register` adds your own
(see `planet_jax.io.tasks`). `BatchEnv` steps several together and returns stacked numpy
arrays; an environment whose episode ended is not stepped again (it repeats its last
observation with reward 0 until all have ended). Everything here is numpy: the model only
ever sees whole batches, converted by `planet_jax.model.preprocess`.

Seeding is explicit: an environment built with seed s produces the same sequence of
episodes (initial states, and so frames) every time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from planet_jax.config import Config, ConfigError
from planet_jax.io import tasks
from planet_jax.io.tasks import register  # noqa: F401  (planet_jax.io.envs.register is the documented call)


class RenderError(RuntimeError):
    """No OpenGL backend could render MuJoCo frames."""


def default_gl() -> None:
    # MuJoCo picks its GL backend when dm_control is first imported: headless EGL is the
    # right default on servers and CI; users can still choose glfw or osmesa themselves.
    os.environ.setdefault("MUJOCO_GL", "egl")


def _render_error(exc: BaseException) -> RenderError:
    backend = os.environ.get("MUJOCO_GL", "")
    return RenderError(
        f"MuJoCo could not render with MUJOCO_GL={backend!r} ({type(exc).__name__}: {exc}); "
        "install an OpenGL backend (e.g. `apt-get install libegl1 libgl1-mesa-dri` for EGL, or "
        "libosmesa6 with MUJOCO_GL=osmesa), or train from states with --obs state."
    )


def env_seed(seed: int, purpose: str, index: int) -> int:
    """A distinct, deterministic environment seed for (agent seed, purpose, index).

    purpose is `train` or `test`; test episodes use seeds no training env uses.
    """
    tag = {"train": 0, "test": 1, "eval": 2}[purpose]
    return int(np.random.SeedSequence([seed, tag, index]).generate_state(1)[0])


class Environment:
    """The interface every environment has (`ControlEnv`, `GymEnv`, and what a factory
    given to `register` returns); a documentation class, not a base to inherit from.

    Attributes:
      obs_shape: (64, 64, 3) for pixels, (D,) for states.
      obs_dtype: uint8 for pixels, float32 for states.
      action_size: A; actions are float arrays [A] in [-1, 1].
      episode_length: the most agent steps per episode, ceil(episode_steps / action_repeat).
    Methods:
      reset(seed=None) -> obs; step(action [A]) -> (obs, summed reward, done);
      render(size) -> uint8 [size, size, 3] (for videos); close().
    """


def _action_bounds(low, high, size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.broadcast_to(np.asarray(low, np.float64), (size,)), np.broadcast_to(np.asarray(high, np.float64), (size,))


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """An action in [-1, 1] (clipped there first) to the box [low, high]."""
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    if np.all(low == -1.0) and np.all(high == 1.0):
        return action  # exactly, not up to the rounding of the affine map
    return low + (action + 1.0) * 0.5 * (high - low)


class ControlEnv:
    """One control-suite task with action repeat (the `Environment` interface)."""

    def __init__(
        self,
        task: str,
        seed: int,
        *,
        obs: str = "pixels",
        action_repeat: int = 0,
        episode_steps: int = 1000,
        image_size: int = 64,
        camera: int = 0,
    ):
        if obs not in ("pixels", "state"):
            raise ConfigError(f"obs must be one of pixels, state, got {obs!r}.")
        found = tasks.check(task)
        domain, name = tasks.suite_name(task)
        default_gl()
        try:
            from dm_control import suite
        except (ImportError, RuntimeError, AttributeError) as exc:  # GL chosen at import
            raise _render_error(exc) from exc
        self.task = task
        self.obs = obs
        self.action_repeat = action_repeat or found.action_repeat
        self.episode_steps = episode_steps
        self.episode_length = -(-episode_steps // self.action_repeat)
        self.image_size = image_size
        self._env = suite.load(domain, name, task_kwargs={"random": seed})
        cameras = self._env.physics.model.ncam
        if not 0 <= camera < max(cameras, 1):
            raise ConfigError(f"camera must be in 0..{cameras - 1} for {task}, got {camera}.")
        self.camera = camera
        spec = self._env.action_spec()
        self.action_size = int(spec.shape[0])
        # The suite's tasks all act in [-1, 1]; rescaling keeps any other box right too.
        self._low, self._high = _action_bounds(spec.minimum, spec.maximum, self.action_size)
        if obs == "pixels":
            self.obs_shape: tuple[int, ...] = (image_size, image_size, 3)
            self.obs_dtype = np.dtype(np.uint8)
        else:
            size = sum(max(1, int(np.prod(v.shape))) for v in self._env.observation_spec().values())
            if size != found.state_size:
                raise RuntimeError(
                    f"{task}: dm_control gives {size} state dims, planet_jax.io.tasks says {found.state_size}"
                )
            self.obs_shape = (size,)
            self.obs_dtype = np.dtype(np.float32)
        self._steps = 0

    def _observe(self, time_step) -> np.ndarray:
        if self.obs == "state":
            return np.concatenate([np.asarray(v, np.float32).ravel() for v in time_step.observation.values()])
        try:
            frame = self._env.physics.render(self.image_size, self.image_size, camera_id=self.camera)
        except Exception as exc:  # every GL failure mode surfaces here on first render
            raise _render_error(exc) from exc
        return np.asarray(frame, np.uint8)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode; returns the first observation.

        With `seed`, the episode's initial state is drawn from a generator reseeded with it,
        so the same seed gives the same episode whatever came before (used for exact resume).
        """
        if seed is not None:
            self._env.task.random.seed(seed)
        self._steps = 0
        return self._observe(self._env.reset())

    def render(self, size: int = 64) -> np.ndarray:
        """A uint8 frame [size, size, 3] of the current state from the camera (for videos)."""
        try:
            return np.asarray(self._env.physics.render(size, size, camera_id=self.camera), np.uint8)
        except Exception as exc:
            raise _render_error(exc) from exc

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Apply `action` for `action_repeat` simulator steps.

        Returns (observation, summed reward, done); done is True after `episode_length` steps.
        """
        action = rescale(action, self._low, self._high)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += time_step.reward or 0.0
            self._steps += 1
            if time_step.last() or self._steps >= self.episode_steps:
                break
        done = self._steps >= self.episode_steps or time_step.last()
        return self._observe(time_step), float(reward), bool(done)

    def close(self) -> None:
        self._env.close()


class GymEnv:
    """A Gymnasium environment with a continuous `Box` action space (the `Environment` interface).

    Actions in [-1, 1] are rescaled to the space's bounds; an episode ends when the
    environment terminates or truncates, or after `episode_steps` simulator steps.
    Frames come from `render_mode="rgb_array"` resized to 64x64 with Pillow (bilinear);
    states are the observation flattened to float32.
    """

    def __init__(self, env_id: str, seed: int, *, obs: str = "state", action_repeat: int = 0,
                 episode_steps: int = 1000, image_size: int = 64):  # fmt: skip
        import gymnasium as gym

        found = tasks.check(tasks.GYM_PREFIX + env_id)
        self.task, self.obs, self.image_size = tasks.GYM_PREFIX + env_id, obs, image_size
        self._env = gym.make(env_id, render_mode="rgb_array" if obs == "pixels" else None)
        self._seed = int(seed)
        self.action_repeat = action_repeat or found.action_repeat
        self.episode_steps = episode_steps
        self.episode_length = -(-episode_steps // self.action_repeat)
        space = self._env.action_space
        self.action_size = int(space.shape[0])
        self._low, self._high = _action_bounds(space.low, space.high, self.action_size)
        self._dtype = space.dtype
        if obs == "pixels":
            self.obs_shape: tuple[int, ...] = (image_size, image_size, 3)
            self.obs_dtype = np.dtype(np.uint8)
        else:
            self.obs_shape = (found.state_size,)
            self.obs_dtype = np.dtype(np.float32)
        self._steps, self._episodes = 0, 0

    def _observe(self, observation) -> np.ndarray:
        if self.obs == "state":
            return np.asarray(observation, np.float32).reshape(-1)
        return self.render(self.image_size)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; with `seed`, its initial state depends on that seed alone."""
        if seed is None:  # a fresh, deterministic seed per episode of this environment
            seed = int(np.random.SeedSequence([self._seed, self._episodes]).generate_state(1)[0])
        self._episodes += 1
        self._steps = 0
        observation, _ = self._env.reset(seed=int(seed))
        return self._observe(observation)

    def render(self, size: int = 64) -> np.ndarray:
        from PIL import Image

        frame = self._env.render()
        if frame is None:
            raise ConfigError(f"{self.task} renders no frames in this observation mode; use --obs pixels for videos.")
        image = Image.fromarray(np.asarray(frame, np.uint8)).resize((size, size), Image.BILINEAR)
        return np.asarray(image, np.uint8)[..., :3]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        scaled = rescale(action, self._low, self._high).astype(self._dtype)
        reward, done = 0.0, False
        for _ in range(self.action_repeat):
            observation, r, terminated, truncated, _ = self._env.step(scaled)
            reward += float(r)
            self._steps += 1
            done = bool(terminated or truncated or self._steps >= self.episode_steps)
            if done:
                break
        return self._observe(observation), reward, done

    def close(self) -> None:
        self._env.close()


class Repeated:
    """A registered environment (one simulator step per `step`, actions in [-1, 1]) with
    action repeat and the episode's step limit added: the `Environment` interface."""

    def __init__(self, env, task: str, *, action_repeat: int, episode_steps: int):
        for name in ("action_size", "obs_shape", "obs_dtype", "reset", "step", "close"):
            if not hasattr(env, name):
                raise ConfigError(
                    f"the environment registered as {task!r} has no {name!r} (see planet_jax.io.envs.Environment)."
                )
        self._env, self.task = env, task
        self.action_size, self.obs_shape = int(env.action_size), tuple(env.obs_shape)
        self.obs_dtype = np.dtype(env.obs_dtype)
        self.action_repeat, self.episode_steps = action_repeat, episode_steps
        self.episode_length = -(-episode_steps // action_repeat)
        self._steps = 0

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._steps = 0
        return np.asarray(self._env.reset(seed), self.obs_dtype)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        reward, done = 0.0, False
        for _ in range(self.action_repeat):
            obs, r, done = self._env.step(action)
            reward += float(r)
            self._steps += 1
            done = bool(done) or self._steps >= self.episode_steps
            if done:
                break
        return np.asarray(obs, self.obs_dtype), reward, done

    def render(self, size: int = 64) -> np.ndarray:
        if not hasattr(self._env, "render"):
            raise ConfigError(f"the environment registered as {self.task!r} cannot render (it has no render(size)).")
        return np.asarray(self._env.render(size), np.uint8)

    def close(self) -> None:
        self._env.close()


class BatchEnv:
    """Several environments of one task stepped together; all arrays have a leading [N] axis.

    An environment whose episode has ended is not stepped again until `reset`: it returns
    its last observation, reward 0 and done True, so that episodes of different lengths
    (a terminating Gymnasium environment, say) can share a batch.
    """

    def __init__(self, envs: Sequence):
        if not envs:
            raise ValueError("BatchEnv needs at least one environment.")
        self.envs = list(envs)
        first = self.envs[0]
        self.obs_shape, self.obs_dtype = first.obs_shape, first.obs_dtype
        self.action_size, self.episode_length = first.action_size, first.episode_length
        self._done = np.zeros(len(self.envs), bool)
        self._last: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Returns obs [N, *obs_shape]; `seeds` [N] reseeds each environment's episode."""
        if seeds is None:
            self._last = [env.reset() for env in self.envs]
        else:
            self._last = [env.reset(seed) for env, seed in zip(self.envs, seeds, strict=True)]
        self._done[:] = False
        return np.stack(self._last)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """actions [N, A] -> obs [N, *obs_shape], reward [N] float32, done [N] bool."""
        reward = np.zeros(len(self.envs), np.float32)
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if not self._done[i]:
                self._last[i], reward[i], self._done[i] = env.step(action)
        return np.stack(self._last), reward, self._done.copy()

    def render(self, index: int, size: int = 64) -> np.ndarray:
        """Environment `index`'s current frame (for videos)."""
        return self.envs[index].render(size)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class EnvWorkerError(RuntimeError):
    """A worker process stepping environments died or failed."""


def _worker(conn, cfg: Config, seeds: list[int]) -> None:
    """A worker's loop: its own BatchEnv over `seeds`, answering the parent's commands."""
    try:
        batch = BatchEnv([make_env(cfg, s) for s in seeds])
        conn.send(("ok", (batch.obs_shape, batch.obs_dtype, batch.action_size, batch.episode_length)))
        while True:
            command, payload = conn.recv()
            if command == "close":
                batch.close()
                conn.send(("ok", None))
                return
            if command == "reset":
                conn.send(("ok", batch.reset(payload)))
            elif command == "step":
                conn.send(("ok", batch.step(payload)))
            elif command == "render":
                conn.send(("ok", batch.render(*payload)))
    except (EOFError, KeyboardInterrupt):  # the parent went away, or Ctrl-C reached us too
        return
    except BaseException as exc:  # noqa: BLE001 (reported to the parent, which raises)
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ParallelBatchEnv:
    """`BatchEnv`'s interface with the environments in `workers` processes, each owning a
    contiguous share and stepping it as a `BatchEnv`, so that N environments step and
    render concurrently. Every environment is built from (cfg, seed) inside its worker and
    sees the same calls as in-process, so the results are identical to `BatchEnv`'s.

    Workers start with `spawn` (a fork of a process running JAX's threads is unsafe);
    tasks registered from Python must be registered by `cfg.env.env_module`, which each
    worker imports. A worker that dies raises EnvWorkerError naming the task and its
    environments.
    """

    def __init__(self, cfg: Config, seeds: Sequence[int], workers: int):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.task = cfg.env.task
        n = len(seeds)
        workers = max(1, min(workers, n))
        bounds = np.linspace(0, n, workers + 1).round().astype(int)
        self._slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self._conns, self._procs = [], []
        for sl in self._slices:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, cfg, list(seeds[sl])), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        # Each worker answers with its environments' shapes once they are built.
        shapes = [self._receive(i) for i in range(len(self._procs))]
        self.obs_shape, self.obs_dtype, self.action_size, self.episode_length = shapes[0]
        self._n = n

    def __len__(self) -> int:
        return self._n

    def _died(self, i: int) -> EnvWorkerError:
        sl, code = self._slices[i], self._procs[i].exitcode
        return EnvWorkerError(
            f"the worker stepping {self.task} environments {sl.start}..{sl.stop - 1} died"
            + (f" (exit code {code})" if code is not None else "")
            + "."
        )

    def _send(self, i: int, message) -> None:
        try:
            self._conns[i].send(message)
        except (BrokenPipeError, ConnectionError, OSError):
            raise self._died(i) from None

    def _receive(self, i: int):
        sl = self._slices[i]
        try:
            status, payload = self._conns[i].recv()
        except (EOFError, ConnectionError, OSError):
            raise self._died(i) from None
        if status == "error":
            raise EnvWorkerError(
                f"the worker stepping {self.task} environments {sl.start}..{sl.stop - 1} failed: {payload}"
            )
        return payload

    def _all(self, command: str, payloads) -> list:
        for i, payload in enumerate(payloads):
            self._send(i, (command, payload))
        return [self._receive(i) for i in range(len(self._conns))]

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        parts = self._all("reset", [None if seeds is None else list(seeds[sl]) for sl in self._slices])
        return np.concatenate(parts)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions)
        parts = self._all("step", [actions[sl] for sl in self._slices])
        obs, reward, done = zip(*parts)
        return np.concatenate(obs), np.concatenate(reward), np.concatenate(done)

    def render(self, index: int, size: int = 64) -> np.ndarray:
        i = next(k for k, sl in enumerate(self._slices) if sl.start <= index < sl.stop)
        self._send(i, ("render", (index - self._slices[i].start, size)))
        return self._receive(i)

    def close(self) -> None:
        for i in range(len(self._conns)):
            try:
                self._send(i, ("close", None))
                self._receive(i)
            except EnvWorkerError:
                pass  # already gone
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def make_env(cfg: Config, seed: int):
    """The environment of `cfg` with an explicit seed (an `Environment`)."""
    e = cfg.env
    found = cfg.task_spec
    if found.kind == "gym":
        return GymEnv(e.task[len(tasks.GYM_PREFIX) :], seed, obs=e.obs, action_repeat=cfg.action_repeat,
                      episode_steps=e.episode_steps, image_size=e.image_size)  # fmt: skip
    if found.kind == "custom":
        factory, _ = tasks.registered(e.task)
        env = Repeated(factory(seed=seed, obs=e.obs), e.task, action_repeat=cfg.action_repeat,
                       episode_steps=e.episode_steps)  # fmt: skip
        if env.action_size != found.action_size or env.obs_shape != cfg.obs_shape:
            raise ConfigError(
                f"the environment registered as {e.task!r} gave action size {env.action_size} and observations "
                f"{tuple(env.obs_shape)}, where it first gave {found.action_size} and {cfg.obs_shape}."
            )
        return env
    return ControlEnv(
        e.task,
        seed,
        obs=e.obs,
        action_repeat=cfg.action_repeat,
        episode_steps=e.episode_steps,
        image_size=e.image_size,
        camera=e.camera,
    )


def make_batch_env(cfg: Config, seeds: Sequence[int], workers: int | None = None) -> BatchEnv | ParallelBatchEnv:
    """One environment per seed, stepped together: in this process, or in `workers` worker
    processes (default `cfg.env.env_workers`; 0 = in this process)."""
    workers = cfg.env.env_workers if workers is None else workers
    if workers > 0 and len(seeds) > 1:
        return ParallelBatchEnv(cfg, seeds, workers)
    return BatchEnv([make_env(cfg, s) for s in seeds])
