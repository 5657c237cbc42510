"""Configuration: frozen dataclasses, the paper's settings, presets and validation.

This module is the one source of defaults. A `Config` is frozen and hashable, so it is
passed to jitted functions as a static argument (`cfg`), and every array shape in the
program follows from it. The defaults are the paper's (Hafner et al., 2019, and the
official code, google-research/planet); `preset('debug')` shrinks every size and count
for tests and a first run on a laptop CPU.

Every field can be overridden on the command line (`planet_jax.train`, `bench --set`); overrides are
validated by `validate`, which raises `ConfigError` with one sentence that names the
field and the accepted values, before anything is compiled or simulated.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from planet_jax.io import tasks as _tasks

PRESETS = ("paper", "small", "quick", "debug")


class ConfigError(ValueError):
    """An invalid configuration value; the message is one sentence naming the field."""


def may_be_zero(default: float) -> Any:
    """A numeric field whose range includes 0; every other int and float field must be
    positive (`validate`)."""
    return field(default=default, metadata={"may_be_zero": True})


class _Group:
    def check(self) -> None:
        """The rules across this group's fields, beyond each field's own type and range
        (`validate`); raises `ConfigError`."""


@dataclass(frozen=True)
class EnvConfig(_Group):
    """The control-suite environment."""

    task: str = "cheetah-run"
    """A Control Suite task as DOMAIN-TASK (the paper's seven, or any other: hopper-hop, ...), gym:ENV_ID for a Gymnasium environment with continuous actions, or a name registered with planet_jax.io.envs.register."""
    obs: Literal["pixels", "state"] = "pixels"
    """`pixels`: 64x64x3 uint8 frames from camera 0; `state`: the flattened dm_control observation."""
    action_repeat: int = may_be_zero(0)
    """Simulator steps per agent step; 0 selects the task's default (the paper's for its seven tasks, 2 for any other)."""
    episode_steps: int = 1000
    """Simulator steps per episode (the suite's 1000 in the paper)."""
    image_size: int = 64
    """Frame height and width; the convolutional encoder and decoder need 64."""
    image_bits: int = 5
    """Bit depth that frames are quantised to before the model sees them."""
    envs_per_seed: int = 1
    """Environments stepped together for each seed during data collection."""
    camera: int = may_be_zero(0)
    """Control Suite camera the frames are rendered from (0 as in the paper; quadruped: 2, see README)."""
    env_workers: int = may_be_zero(0)
    """Worker processes that step and render the environments of a batch concurrently (0: this process), with the same results either way."""
    env_module: str = ""
    """Python module imported before the task is looked up, for tasks it registers with planet_jax.io.envs.register."""

    def check(self) -> None:
        try:
            _tasks.import_env_module(self.env_module)
        except _tasks.TaskError as exc:
            raise ConfigError(str(exc)) from None
        found = _tasks.check(self.task)
        if self.obs == "state" and not found.state_size:
            raise ConfigError(f"task {self.task!r} has no flat state observation: use --obs pixels.")
        if self.obs == "pixels" and not found.pixels:
            raise ConfigError(f"task {self.task!r} does not render frames: use --obs state.")
        if self.episode_steps > 1000:
            raise ConfigError(f"episode_steps must be at most 1000 (the suite's episode), got {self.episode_steps}.")
        if self.obs == "pixels" and self.image_size != 64:
            raise ConfigError(f"image_size must be 64 for the convolutional model, got {self.image_size}.")
        if self.image_bits > 8:
            raise ConfigError(f"image_bits must be between 1 and 8, got {self.image_bits}.")


@dataclass(frozen=True)
class ModelConfig(_Group):
    """The world model: RSSM, encoder, decoder and reward head."""

    variant: Literal["rssm", "ssm", "rnn"] = "rssm"
    """`rssm`: deterministic and stochastic path (the paper's model); `ssm`: stochastic only; `rnn`: deterministic only."""
    deter_size: int = 200
    """Size of the deterministic state h (GRU units)."""
    stoch_size: int = 30
    """Size of the stochastic state z."""
    hidden_size: int = 200
    """Units of the dense layers around the GRU and in the prior and posterior heads."""
    cnn_depth: int = 32
    """Channel multiplier of the conv encoder (32, 64, 128, 256) and deconv decoder; the pixel embedding has 32 * cnn_depth units."""
    state_layers: int = may_be_zero(2)
    """Hidden layers of the MLP encoder and decoder used for `obs=state`."""
    state_units: int = 300
    """Units of the MLP encoder and decoder used for `obs=state`; also its embedding size."""
    reward_layers: int = may_be_zero(3)
    """Hidden layers of the reward MLP."""
    reward_units: int = 300
    """Units per hidden layer of the reward MLP."""
    min_std: float = may_be_zero(0.1)
    """Floor added to the softplus standard deviation of the prior and posterior."""
    matmul_precision: Literal["default", "float32", "tensorfloat32", "bfloat16"] = "default"
    """Precision of the float32 matrix products and convolutions: `default` (the backend's fastest: float32 on CPU, TensorFloat-32 on NVIDIA GPUs since Ampere, one bfloat16 pass on TPU), `float32` (as the official code ran on a V100), `tensorfloat32` or `bfloat16`; runs and benchmarks record what it resolved to."""
    conv_impl: Literal["auto", "matmul", "xla"] = "auto"
    """How convolutions run: `matmul` (the exact matmul and stride-1 forms of ops/convs.py, once called `cpu`, which still loads), `xla` (lax convolutions), or `auto` (matmul on CPU and GPU, xla on TPU: experiments/results/README.md#backend-defaults)."""


@dataclass(frozen=True)
class LossConfig(_Group):
    """The variational objective."""

    free_nats: float = may_be_zero(3.0)
    """Per-step KL below this many nats is not penalised."""
    image_scale: float = may_be_zero(1.0)
    """Weight of the image log-likelihood."""
    reward_scale: float = may_be_zero(10.0)
    """Weight of the reward log-likelihood."""
    kl_scale: float = may_be_zero(1.0)
    """Weight of the KL term."""
    overshooting_distance: int = may_be_zero(0)
    """Latent overshooting distance D; 0 or 1 keeps only the one-step KL (the final agent's default)."""
    overshooting_kl_scale: float = may_be_zero(1.0)
    """Weight beta of the KL terms for distances d > 1 (d = 1 has weight 1)."""


@dataclass(frozen=True)
class OptimConfig(_Group):
    """Adam with global-norm gradient clipping."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    adam_eps: float = 1e-4
    """Adam epsilon."""
    adam_form: Literal["tf1", "optax"] = "tf1"
    """Where Adam adds eps: `tf1` before the bias correction, as TF1's AdamOptimizer in the official code (32x eps at the first update in bias-corrected terms, within 1% after about 3900), or `optax` after it (`optax.adam`)."""
    grad_clip: float = may_be_zero(1000.0)
    """Global gradient norm above which gradients are rescaled."""


@dataclass(frozen=True)
class PlannerConfig(_Group):
    """The cross-entropy method in latent space."""

    horizon: int = 12
    """Planning horizon H in agent steps."""
    num_iterations: int = 10
    """CEM iterations I per action."""
    num_candidates: int = 1000
    """Candidate action sequences J per iteration."""
    num_elites: int = 100
    """Top K candidates that the action distribution is refitted to."""
    exploration_noise: float = may_be_zero(0.3)
    """Std of Gaussian noise added to actions during data collection (never in tests)."""
    env_axis: Literal["auto", "vmap", "map"] = "auto"
    """How the searches of several environments run: `vmap` (one batched search), `map` (one after another, each search's candidates in the CPU's cache), `auto`: map on CPU, vmap elsewhere (experiments/results/README.md#backend-defaults)."""
    reward_pass: Literal["auto", "per_step", "after"] = "auto"
    """Where the search applies the reward head: `per_step` inside the rollout, `after` once over all steps' features (a shorter chain of kernels), `auto`: per_step on CPU, after elsewhere, the faster on each (experiments/results/README.md#backend-defaults)."""
    rollout_unroll: int = may_be_zero(0)
    """Horizon steps per loop iteration of the candidates' rollout (`lax.scan(unroll=...)`); 0 = auto: fully unrolled on GPU/TPU, a loop on CPU, the faster on each (experiments/results/README.md#backend-defaults)."""

    def check(self) -> None:
        if self.num_elites > self.num_candidates:
            raise ConfigError(
                f"num_elites must be at most num_candidates ({self.num_candidates}), got {self.num_elites}."
            )


@dataclass(frozen=True)
class TrainConfig(_Group):
    """The training loop."""

    seed: int = may_be_zero(0)
    """Seed of the first agent; agent i of a sweep uses seed + i."""
    num_seeds: int = 1
    """Independent agents trained at once along a leading vmapped axis."""
    episodes: int = 1000
    """Training episodes in total, the seed episodes included."""
    seed_episodes: int = 5
    """Episodes of uniformly random actions collected before training (S)."""
    train_steps: int = 100
    """Gradient updates per collected episode (C)."""
    batch_size: int = 50
    """Chunks per gradient update (B)."""
    chunk_length: int = 50
    """Agent steps per chunk (L)."""
    updates_per_call: int = 10
    """Gradient updates run as one compiled scan per call; bounds the host batch memory."""
    test_every: int = 25
    """Run test episodes every this many training episodes."""
    test_episodes: int = 10
    """Noise-free test episodes per test phase (distinct environment seeds)."""
    checkpoint_every: int = 10
    """Save a checkpoint every this many training episodes (and at the end)."""
    keep_checkpoints: int = 3
    """Checkpoints kept on disk (the newest ones)."""
    skip_nonfinite: bool = False
    """Skip (and count) updates whose loss or gradients are NaN or Inf, instead of stopping the run."""
    agent_axis: Literal["auto", "vmap", "map"] = "auto"
    """How seeds and sweep rows run: `vmap` (batched: fast on GPU/TPU), `map` (one after another: bit-identical to single runs), `auto`: map on CPU, vmap elsewhere."""
    sweep: tuple[str, ...] = ()
    """Hyperparameter sweep, e.g. ('learning_rate=1e-3,3e-4', 'free_nats=2,3'): every combination x every seed trains in one program (rows: planet_jax.sweeps)."""
    replay_from: str = ""
    """Train on the episodes of another run (its directory, or one agent's replay directory), read-only; training starts at once, without random seed episodes."""
    collect: bool = True
    """Collect new episodes with the planner; false (with replay_from) trains on that replay alone, one cycle of C updates per "episode"."""

    def check(self) -> None:
        if self.seed_episodes > self.episodes:
            raise ConfigError(f"seed_episodes must be at most episodes ({self.episodes}), got {self.seed_episodes}.")
        if not self.collect and not self.replay_from:
            raise ConfigError("collect=false needs replay_from: without collecting there is nothing to train on.")
        if self.train_steps % self.updates_per_call:
            raise ConfigError(
                f"updates_per_call must divide train_steps ({self.train_steps}), got {self.updates_per_call}."
            )


@dataclass(frozen=True)
class Config:
    """Everything a run needs; frozen and hashable, so it is a static jit argument."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check(self) -> None:
        """The rules across groups: chunks fit in an episode, overshooting in a chunk."""
        t = self.train
        if t.chunk_length > self.episode_length:
            raise ConfigError(
                f"chunk_length must be at most the episode length ({self.episode_length} agent steps), "
                f"got {t.chunk_length}."
            )
        if self.loss.overshooting_distance > t.chunk_length:
            raise ConfigError(
                f"overshooting_distance must be at most chunk_length ({t.chunk_length}), "
                f"got {self.loss.overshooting_distance}."
            )

    # Derived values, so that callers never recompute them differently.
    @property
    def task_spec(self) -> _tasks.TaskSpec:
        """Sizes and defaults of the task (`planet_jax.io.tasks.spec`)."""
        _tasks.import_env_module(self.env.env_module)
        return _tasks.spec(self.env.task)

    @property
    def action_repeat(self) -> int:
        return self.env.action_repeat or self.task_spec.action_repeat

    @property
    def episode_length(self) -> int:
        """Agent steps per episode: ceil(episode_steps / action_repeat)."""
        return math.ceil(self.env.episode_steps / self.action_repeat)

    @property
    def action_size(self) -> int:
        return self.task_spec.action_size

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """(64, 64, 3) uint8 frames, or (D,) float32 states."""
        if self.env.obs == "pixels":
            return (self.env.image_size, self.env.image_size, 3)
        return (self.task_spec.state_size,)

    @property
    def deter_size(self) -> int:
        """Size of h; 0 for the stochastic-only `ssm`."""
        return 0 if self.model.variant == "ssm" else self.model.deter_size

    @property
    def stoch_size(self) -> int:
        """Size of z; 0 for the deterministic-only `rnn`."""
        return 0 if self.model.variant == "rnn" else self.model.stoch_size

    @property
    def feature_size(self) -> int:
        """Size of the model state features [h, z] read by the decoder and reward head."""
        return self.deter_size + self.stoch_size

    @property
    def embed_size(self) -> int:
        """Size of the encoder output e_t."""
        if self.env.obs == "pixels":
            return 32 * self.model.cnn_depth
        return self.model.state_units


def paper(task: str = "cheetah-run") -> Config:
    """Every value from the paper and its official code; the action repeat follows the task."""
    return Config(env=EnvConfig(task=task))


def debug(task: str = "cheetah-run") -> Config:
    """Tiny sizes and counts: a whole run takes seconds to minutes on a CPU."""
    return Config(
        env=EnvConfig(task=task),
        model=ModelConfig(
            deter_size=32,
            stoch_size=8,
            hidden_size=32,
            cnn_depth=4,
            state_layers=2,
            state_units=64,
            reward_layers=2,
            reward_units=32,
        ),
        planner=PlannerConfig(horizon=6, num_iterations=3, num_candidates=64, num_elites=8),
        train=TrainConfig(
            episodes=6,
            seed_episodes=2,
            train_steps=10,
            batch_size=8,
            chunk_length=16,
            updates_per_call=10,
            test_every=2,
            test_episodes=2,
            checkpoint_every=2,
        ),
    )


def small(task: str = "cheetah-run") -> Config:
    """A pixel agent for a laptop CPU: the paper's loop and objective with narrower networks,
    shorter chunks, fewer updates per episode, a smaller search and 1 free nat.

    cnn depth 16, h 100, z 16, hidden 100, reward MLP 2 x 100; B = 8 chunks of L = 32,
    C = 100 updates per episode (twice the updates of B = 16, C = 50 on the same frames,
    and faster per episode on a CPU: experiments/results/cpu-pixels-small-b8c100); CEM with
    H = 12, I = 6, J = 300, K = 30. A test phase every 5 episodes. Free nats 1 instead of
    the paper's 3: at B = 16, C = 50 swingup read 240.2 against 168.6 at 60 episodes over
    2 seeds (experiments/results/cpu-pixels-small-cartpole-swingup-fn1 against -swingup);
    every committed `small` pixel run since used it.
    """
    return Config(
        env=EnvConfig(task=task),
        loss=LossConfig(free_nats=1.0),
        model=ModelConfig(
            deter_size=100, stoch_size=16, hidden_size=100, cnn_depth=16, reward_layers=2, reward_units=100
        ),
        planner=PlannerConfig(horizon=12, num_iterations=6, num_candidates=300, num_elites=30),
        train=TrainConfig(
            episodes=60,
            seed_episodes=5,
            train_steps=100,
            batch_size=8,
            chunk_length=32,
            updates_per_call=25,
            test_every=5,
            test_episodes=5,
            checkpoint_every=5,
        ),
    )


def quick(task: str = "cartpole-swingup") -> Config:
    """A first run that learns within minutes on a laptop CPU: state observations, small models.

    The paper's loop and objective from the flattened dm_control state (`obs=state`) with
    h 64, z 16, hidden 64, 64-unit state MLPs and reward MLP 2 x 64; B = 32 chunks of
    L = 32, C = 100 updates per episode; CEM with H = 12, I = 6, J = 300, K = 30; 4 seed
    episodes, 20 episodes, a test phase of 5 episodes every 4. On cartpole-swingup these
    settings reach about 2.8x a random policy's test return at 20 episodes over 5 seeds
    (experiments/results/cpu-state-ab-objective, experiments/results/cpu-quickstart).
    """
    return Config(
        env=EnvConfig(task=task, obs="state"),
        model=ModelConfig(
            deter_size=64,
            stoch_size=16,
            hidden_size=64,
            state_layers=2,
            state_units=64,
            reward_layers=2,
            reward_units=64,
        ),
        planner=PlannerConfig(horizon=12, num_iterations=6, num_candidates=300, num_elites=30),
        train=TrainConfig(
            episodes=20,
            seed_episodes=4,
            train_steps=100,
            batch_size=32,
            chunk_length=32,
            updates_per_call=50,
            test_every=4,
            test_episodes=5,
            checkpoint_every=4,
        ),
    )


def preset(name: str, task: str = "cheetah-run") -> Config:
    """The named preset for a task: `paper`, `small`, `quick` or `debug`."""
    presets = {"paper": paper, "small": small, "quick": quick, "debug": debug}
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    _tasks.check(task)
    return presets[name](task)


# ----------------------------------------------------------------------------------------
# Flat field access: every leaf field has a unique name (`learning_rate`, `horizon`, ...),
# which is what the command line, sweeps and config diffs use.


def field_paths(cfg: Config | None = None) -> dict[str, tuple[str, str]]:
    """Map each leaf field name to its (group, name) path, e.g. `horizon` -> ('planner', 'horizon')."""
    cfg = cfg or Config()
    paths: dict[str, tuple[str, str]] = {}
    for group in dataclasses.fields(cfg):
        for leaf in dataclasses.fields(getattr(cfg, group.name)):
            assert leaf.name not in paths, f"duplicate config field name {leaf.name}"
            paths[leaf.name] = (group.name, leaf.name)
    return paths


def replace(cfg: Config, **updates: Any) -> Config:
    """A copy of `cfg` with leaf fields replaced by flat name: `replace(cfg, horizon=8)`."""
    paths = field_paths(cfg)
    groups: dict[str, dict[str, Any]] = {}
    for name, value in updates.items():
        if name not in paths:
            raise ConfigError(f"unknown config field {name!r}: valid fields are {', '.join(sorted(paths))}.")
        group, leaf = paths[name]
        groups.setdefault(group, {})[leaf] = value
    return dataclasses.replace(cfg, **{g: dataclasses.replace(getattr(cfg, g), **kv) for g, kv in groups.items()})


def parse_override(cfg: Config, text: str) -> tuple[str, Any]:
    """'NAME=VALUE' -> (name, value typed like the field's current value), e.g. 'reward_units=200'."""
    name, sep, raw = text.partition("=")
    paths = field_paths(cfg)
    if not sep or name not in paths:
        raise ConfigError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(paths))}, got {text!r}.")
    group, leaf = paths[name]
    current = getattr(getattr(cfg, group), leaf)
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1")
        if isinstance(current, tuple):
            # Only `sweep` is a tuple, and its entries contain commas themselves.
            raise ConfigError(f"{name} cannot be set as NAME=VALUE; give it with its own flag.")
        return name, type(current)(raw)
    except ValueError:
        raise ConfigError(f"{name} expects a {type(current).__name__}, got {raw!r}.") from None


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as nested plain data (for JSON)."""
    return dataclasses.asdict(cfg)


# Fields that older run directories' config.json hold and this version no longer has: the
# value that meant "as today" (dropped on reading), and why any other value cannot be read.
RETIRED = {
    ("planner", "rollout_kernel"): (
        "xla",
        "the Pallas rollout kernel left the planner for planet_jax.experimental.rollout_kernel",
    ),
    ("planner", "kernel_block"): (None, ""),
    ("planner", "kernel_warps"): (None, ""),
    ("planner", "kernel_stages"): (None, ""),
    ("planner", "kernel_rows"): (None, ""),
}


# Values that older run directories' config.json hold under another name: {old: new}.
RENAMED_VALUES = {("model", "conv_impl"): {"cpu": "matmul"}}


def from_dict(data: dict[str, dict[str, Any]]) -> Config:
    """Inverse of `to_dict`; unknown keys are an error. Retired fields (`RETIRED`) holding
    the value that meant today's behaviour are dropped and renamed values
    (`RENAMED_VALUES`) read under their new name, so older run directories load."""
    groups = {}
    for group in dataclasses.fields(Config):
        cls = group.default_factory  # type: ignore[misc]
        values = dict(data.get(group.name, {}))
        for (where, name), renames in RENAMED_VALUES.items():
            if where == group.name and values.get(name) in renames:
                values[name] = renames[values[name]]
        for (where, name), (neutral, why) in RETIRED.items():
            if where == group.name and name in values:
                value = values.pop(name)
                if neutral is not None and value != neutral:
                    raise ConfigError(f"{where}.{name}={value!r} can no longer be read: {why}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown config fields in {group.name}: {', '.join(sorted(unknown))}.")
        # JSON has no tuples: sequences come back as lists.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        groups[group.name] = cls(**values)
    return Config(**groups)


def diff(old: Config, new: Config) -> list[str]:
    """Human-readable lines `field: old -> new` for every leaf that differs."""
    lines = []
    for name, (group, leaf) in field_paths(old).items():
        a, b = getattr(getattr(old, group), leaf), getattr(getattr(new, group), leaf)
        if a != b:
            lines.append(f"{name}: {a!r} -> {b!r}")
    return lines


# ----------------------------------------------------------------------------------------
# Validation: each field's type, choices (its Literal) and range (positive, or
# `may_be_zero`), then the rules across fields of each group (`check`), then across groups.


def zero_allowed(name: str) -> bool:
    """Whether the numeric leaf field `name` may be zero (`may_be_zero`); others must be positive."""
    group, _ = field_paths()[name]
    return any(f.name == name and f.metadata.get("may_be_zero") for f in dataclasses.fields(getattr(Config(), group)))


def _check_value(name: str, value: Any, annotation: Any, zero_ok: bool) -> None:
    """Type, choices and range of one leaf field."""
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        return
    expected = typing.get_origin(annotation) or annotation
    if expected in (bool, tuple):
        if not isinstance(value, expected):
            raise ConfigError(f"{name} must be a {expected.__name__}, got {value!r}.")
        return
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}.")
        return
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}.")
        lower = 0 if zero_ok else 1
        if value < lower:
            raise ConfigError(f"{name} must be an integer >= {lower}, got {value!r}.")
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}.")
        if value < 0 if zero_ok else value <= 0:
            raise ConfigError(f"{name} must be a number {'>= 0' if zero_ok else '> 0'}, got {value!r}.")


def validate(cfg: Config) -> Config:
    """Check every field; raise `ConfigError` naming the first bad one. Returns `cfg`."""
    from planet_jax import sweeps

    for group in dataclasses.fields(cfg):
        values = getattr(cfg, group.name)
        hints = typing.get_type_hints(type(values))
        for leaf in dataclasses.fields(values):
            _check_value(
                leaf.name, getattr(values, leaf.name), hints[leaf.name], leaf.metadata.get("may_be_zero", False)
            )
    for group in dataclasses.fields(cfg):
        getattr(cfg, group.name).check()
    cfg.check()
    sweeps.combos(cfg)
    return cfg
