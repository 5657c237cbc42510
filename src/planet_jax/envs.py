"""DeepMind Control Suite tasks from pixels (or states), with action repeat, on the host.

`ControlEnv` wraps one dm_control task: actions in [-1, 1], the reward summed over the
repeated simulator steps, a fixed number of simulator steps per episode, and observations
that are either 64x64x3 uint8 frames rendered directly at that size from camera 0 or the
flattened dm_control observation vector (float32). `BatchEnv` steps several of them
together and returns stacked numpy arrays. Everything here is numpy: the model only ever
sees whole batches, converted by `planet_jax.preprocess`.

Seeding is explicit: an environment built with seed s produces the same sequence of
episodes (initial states, and so frames) every time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from planet_jax.config import STATE_SIZES, TASKS, Config, ConfigError


class RenderError(RuntimeError):
    """No OpenGL backend could render MuJoCo frames."""


def _default_gl() -> None:
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


class ControlEnv:
    """One control-suite task with action repeat.

    Attributes:
      obs_shape: (64, 64, 3) for pixels, (D,) for states.
      obs_dtype: uint8 for pixels, float32 for states.
      action_size: A; actions are float arrays [A] in [-1, 1] (clipped here).
      episode_length: agent steps per episode, ceil(episode_steps / action_repeat).
    """

    def __init__(
        self,
        task: str,
        seed: int,
        *,
        obs: str = "pixels",
        action_repeat: int = 0,
        episode_steps: int = 1000,
        image_size: int = 64,
    ):
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}.")
        if obs not in ("pixels", "state"):
            raise ConfigError(f"obs must be one of pixels, state, got {obs!r}.")
        domain, name, paper_repeat = TASKS[task]
        _default_gl()
        try:
            from dm_control import suite
        except (ImportError, RuntimeError, AttributeError) as exc:  # GL chosen at import
            raise _render_error(exc) from exc
        self.task = task
        self.obs = obs
        self.action_repeat = action_repeat or paper_repeat
        self.episode_steps = episode_steps
        self.episode_length = -(-episode_steps // self.action_repeat)
        self.image_size = image_size
        self._env = suite.load(domain, name, task_kwargs={"random": seed})
        spec = self._env.action_spec()
        self.action_size = int(spec.shape[0])
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        if obs == "pixels":
            self.obs_shape: tuple[int, ...] = (image_size, image_size, 3)
            self.obs_dtype = np.dtype(np.uint8)
        else:
            size = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            if size != STATE_SIZES[task]:
                raise RuntimeError(
                    f"{task}: dm_control gives {size} state dims, config.STATE_SIZES says {STATE_SIZES[task]}"
                )
            self.obs_shape = (size,)
            self.obs_dtype = np.dtype(np.float32)
        self._steps = 0

    def _observe(self, time_step) -> np.ndarray:
        if self.obs == "state":
            return np.concatenate([np.asarray(v, np.float32).ravel() for v in time_step.observation.values()])
        try:
            frame = self._env.physics.render(self.image_size, self.image_size, camera_id=0)
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
        """A uint8 frame [size, size, 3] of the current state from camera 0 (for videos)."""
        try:
            return np.asarray(self._env.physics.render(size, size, camera_id=0), np.uint8)
        except Exception as exc:
            raise _render_error(exc) from exc

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Apply `action` for `action_repeat` simulator steps.

        Returns (observation, summed reward, done); done is True after `episode_length` steps.
        """
        action = np.clip(np.asarray(action, np.float64), self._low, self._high)
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


class BatchEnv:
    """Several `ControlEnv`s of one task stepped together; all arrays have a leading [N] axis."""

    def __init__(self, envs: Sequence[ControlEnv]):
        if not envs:
            raise ValueError("BatchEnv needs at least one environment.")
        self.envs = list(envs)
        first = self.envs[0]
        self.obs_shape, self.obs_dtype = first.obs_shape, first.obs_dtype
        self.action_size, self.episode_length = first.action_size, first.episode_length

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Returns obs [N, *obs_shape]; `seeds` [N] reseeds each environment's episode."""
        if seeds is None:
            return np.stack([env.reset() for env in self.envs])
        return np.stack([env.reset(seed) for env, seed in zip(self.envs, seeds, strict=True)])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """actions [N, A] -> obs [N, *obs_shape], reward [N] float32, done [N] bool."""
        results = [env.step(a) for env, a in zip(self.envs, actions)]
        obs, reward, done = zip(*results)
        return np.stack(obs), np.asarray(reward, np.float32), np.asarray(done)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_env(cfg: Config, seed: int) -> ControlEnv:
    """The environment of `cfg` with an explicit seed."""
    e = cfg.env
    return ControlEnv(
        e.task,
        seed,
        obs=e.obs,
        action_repeat=cfg.action_repeat,
        episode_steps=e.episode_steps,
        image_size=e.image_size,
    )


def make_batch_env(cfg: Config, seeds: Sequence[int]) -> BatchEnv:
    """One environment per seed, stepped together."""
    return BatchEnv([make_env(cfg, s) for s in seeds])
