"""Which environments a run can use, and their sizes: the one place a task name is resolved.

A task is one of
  - a DeepMind Control Suite task, `DOMAIN-TASK` as the suite spells it (`cheetah-run`,
    `hopper-hop`, `cartpole-swingup_sparse`, `ball_in_cup-catch`; the paper's `cup-catch`
    is kept as its name for `ball_in_cup-catch`);
  - a Gymnasium environment with a continuous `Box` action space, `gym:ENV_ID`
    (`gym:Pendulum-v1`);
  - an environment registered from Python with `register(name, factory)`; a run finds it
    when `--env-module MODULE` names the module that registers it.

`spec(task)` gives what the model's shapes need (action size, state size, the default
action repeat) without building an environment for the seven paper tasks, and by building
one once (cached) for any other. Standard library only: the simulators are imported when
an environment is first needed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
from collections.abc import Callable
from typing import Any

# The paper's tasks: (domain, task, action repeat), with their sizes, so that configs of
# these build with no simulator imported (tests/test_envs.py checks them against dm_control).
PAPER_TASKS: dict[str, tuple[str, str, int]] = {
    "cartpole-swingup": ("cartpole", "swingup", 8),
    "cartpole-balance": ("cartpole", "balance", 8),
    "reacher-easy": ("reacher", "easy", 4),
    "cheetah-run": ("cheetah", "run", 4),
    "finger-spin": ("finger", "spin", 2),
    "cup-catch": ("ball_in_cup", "catch", 4),
    "walker-walk": ("walker", "walk", 2),
}
PAPER_ACTION_SIZES = {"cartpole-swingup": 1, "cartpole-balance": 1, "reacher-easy": 2, "cheetah-run": 6,
                      "finger-spin": 2, "cup-catch": 2, "walker-walk": 6}  # fmt: skip
PAPER_STATE_SIZES = {"cartpole-swingup": 5, "cartpole-balance": 5, "reacher-easy": 6, "cheetah-run": 17,
                     "finger-spin": 9, "cup-catch": 8, "walker-walk": 24}  # fmt: skip

# Published PlaNet test returns (camera-ready Table 1, 1000 episodes) and at about 100
# episodes (100k environment steps, as reported in later papers). cartpole-balance has
# no published number.
PAPER_SCORES_1000: dict[str, float] = {
    "cartpole-swingup": 821.0,
    "reacher-easy": 832.0,
    "cheetah-run": 662.0,
    "finger-spin": 700.0,
    "cup-catch": 930.0,
    "walker-walk": 951.0,
}
PAPER_SCORES_100: dict[str, float] = {
    "cartpole-swingup": 297.0,
    "reacher-easy": 20.0,
    "cheetah-run": 138.0,
    "finger-spin": 136.0,
    "walker-walk": 224.0,
    "cup-catch": 0.0,
}

# Action repeat of every task outside the paper's table, as Dreamer uses for the suite.
DEFAULT_ACTION_REPEAT = 2
GYM_PREFIX = "gym:"


class TaskError(ValueError):
    """A task that does not exist or cannot be used; the message is one sentence."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """kind: `suite`, `gym` or `custom`; action_repeat: the task's default."""

    kind: str
    action_size: int
    state_size: int  # 0: no flat state observation (pixels only)
    action_repeat: int
    pixels: bool = True  # whether it renders frames
    max_episode_steps: int | None = None  # gym: its TimeLimit, when it has one


# name -> (factory(seed, obs, image_size, camera) -> environment, default action repeat)
_REGISTRY: dict[str, tuple[Callable[..., Any], int]] = {}


def register(name: str, factory: Callable[..., Any], *, action_repeat: int = DEFAULT_ACTION_REPEAT) -> None:
    """Make `name` a task (any name but the paper's and `gym:...`).

    `factory(seed=int, obs="pixels" | "state")` returns an environment that takes one
    simulator step per `step` (planet_jax adds the action repeat and the episode's step
    limit), with `action_size`, `obs_shape` ((64, 64, 3) or (D,)), `obs_dtype` (uint8 or
    float32), `reset(seed)` -> obs, `step(action in [-1, 1]^A)` -> (obs, reward, done),
    `render(size)` -> uint8 frame (for videos) and `close()`. A factory may refuse an
    observation mode it does not have by raising. `action_repeat` is its default.
    """
    if not name or name in PAPER_TASKS or name.startswith(GYM_PREFIX):
        raise TaskError(f"{name!r} cannot be registered: it names a paper task or a gym: environment.")
    if not callable(factory):
        raise TaskError(f"the factory registered for {name!r} must be callable, got {factory!r}.")
    _REGISTRY[name] = (factory, int(action_repeat))
    spec.cache_clear()


def registered(name: str) -> tuple[Callable[..., Any], int]:
    return _REGISTRY[name]


def import_env_module(module: str) -> None:
    """Import the module that registers a run's custom environments (`--env-module`)."""
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise TaskError(f"--env-module {module} could not be imported ({exc}).") from None


def suite_name(task: str) -> tuple[str, str]:
    """(domain, task) of a Control Suite name."""
    if task in PAPER_TASKS:
        return PAPER_TASKS[task][:2]
    domain, _, name = task.partition("-")
    return domain, name


def suite_tasks() -> list[str]:
    """Every Control Suite task as `DOMAIN-TASK` (imports dm_control)."""
    from dm_control import suite

    return [f"{d}-{t}" for d, t in suite.ALL_TASKS]


def _closest(name: str, options: list[str]) -> str:
    near = difflib.get_close_matches(name, options, n=4, cutoff=0.5)
    return f"did you mean {', '.join(near)}?" if near else f"the suite has {', '.join(options)}."


@functools.cache
def spec(task: str) -> TaskSpec:
    """The sizes and default action repeat of `task`; TaskError when it cannot be used."""
    if task in PAPER_TASKS:
        return TaskSpec("suite", PAPER_ACTION_SIZES[task], PAPER_STATE_SIZES[task], PAPER_TASKS[task][2])
    if task in _REGISTRY:
        factory, repeat = _REGISTRY[task]
        sizes = {}
        for obs in ("state", "pixels"):
            try:
                env = factory(seed=0, obs=obs)
            except Exception:  # noqa: BLE001 (a factory may support one mode only)
                continue
            sizes[obs] = (int(env.action_size), int(env.obs_shape[0]) if obs == "state" else 0)
            env.close()
        if not sizes:
            raise TaskError(f"the factory registered for {task!r} failed in both observation modes.")
        action_size = next(iter(sizes.values()))[0]
        return TaskSpec("custom", action_size, sizes.get("state", (0, 0))[1], repeat, pixels="pixels" in sizes)
    if task.startswith(GYM_PREFIX):
        return _gym_spec(task[len(GYM_PREFIX) :])
    if "-" not in task:
        raise TaskError(
            f"unknown task {task!r}: give a Control Suite task as DOMAIN-TASK (e.g. hopper-hop), "
            "gym:ENV_ID for Gymnasium, or a registered name."
        )
    from planet_jax.io.envs import default_gl

    default_gl()
    known = suite_tasks()
    if task not in known:
        raise TaskError(f"unknown task {task!r}: {_closest(task, sorted(set(known) | set(PAPER_TASKS)))}")
    from dm_control import suite

    domain, name = suite_name(task)
    env = suite.load(domain, name)
    state = sum(max(1, int(_prod(v.shape))) for v in env.observation_spec().values())
    return TaskSpec("suite", int(env.action_spec().shape[0]), state, DEFAULT_ACTION_REPEAT)


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _gym_spec(env_id: str) -> TaskSpec:
    try:
        import gymnasium as gym
    except ImportError:
        raise TaskError(f"gym:{env_id} needs Gymnasium: pip install 'planet-jax[gym]'.") from None
    try:
        env = gym.make(env_id)
    except Exception as exc:  # gymnasium raises its own error types for unknown ids
        raise TaskError(f"gym:{env_id} could not be made ({type(exc).__name__}: {str(exc).splitlines()[0]}).") from None
    try:
        action, observation = env.action_space, env.observation_space
        if not isinstance(action, gym.spaces.Box) or len(action.shape) != 1:
            raise TaskError(
                f"gym:{env_id} has a {type(action).__name__} action space; PlaNet plans continuous (Box) actions."
            )
        if not (action.bounded_below.all() and action.bounded_above.all()):
            raise TaskError(f"gym:{env_id} has unbounded actions; PlaNet's planner searches a bounded box.")
        state = _prod(observation.shape) if isinstance(observation, gym.spaces.Box) else 0
        steps = env.spec.max_episode_steps if env.spec is not None else None
        pixels = "rgb_array" in env.metadata.get("render_modes", [])
        return TaskSpec("gym", int(action.shape[0]), int(state), DEFAULT_ACTION_REPEAT, pixels, steps)
    finally:
        env.close()


def check(task: str) -> TaskSpec:
    """`spec(task)`, with its errors as the config's (one sentence naming the task)."""
    from planet_jax.config import ConfigError

    try:
        return spec(task)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None
