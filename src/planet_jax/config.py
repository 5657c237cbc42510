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
from dataclasses import dataclass, field
from typing import Any, Literal

from planet_jax.io import tasks as _tasks
from planet_jax.io.tasks import PAPER_ACTION_SIZES, PAPER_STATE_SIZES, PAPER_TASKS

# The paper's seven tasks (name -> (domain, task, action repeat)) and their sizes; any other
# Control Suite, Gymnasium or registered task is resolved by `planet_jax.io.tasks`.
TASKS = PAPER_TASKS
ACTION_SIZES = PAPER_ACTION_SIZES
STATE_SIZES = PAPER_STATE_SIZES

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

PRESETS = ("paper", "small", "debug")

# Fields that a sweep may vary inside one compiled program: they set no array shape, so
# they travel as per-row arrays (in `TrainState.hyper`) instead of static config.
SWEEPABLE = (
    "learning_rate",
    "adam_eps",
    "grad_clip",
    "free_nats",
    "image_scale",
    "reward_scale",
    "kl_scale",
    "overshooting_kl_scale",
    "exploration_noise",
)


class ConfigError(ValueError):
    """An invalid configuration value; the message is one sentence naming the field."""


@dataclass(frozen=True)
class EnvConfig:
    """The control-suite environment."""

    task: str = "cheetah-run"
    """A Control Suite task as DOMAIN-TASK (the paper's seven, or any other: hopper-hop, ...), gym:ENV_ID for a Gymnasium environment with continuous actions, or a name registered with planet_jax.io.envs.register."""
    obs: Literal["pixels", "state"] = "pixels"
    """`pixels`: 64x64x3 uint8 frames from camera 0; `state`: the flattened dm_control observation."""
    action_repeat: int = 0
    """Simulator steps per agent step; 0 selects the task's default (the paper's for its seven tasks, 2 for any other)."""
    episode_steps: int = 1000
    """Simulator steps per episode (the suite's 1000 in the paper)."""
    image_size: int = 64
    """Frame height and width; the convolutional encoder and decoder need 64."""
    image_bits: int = 5
    """Bit depth that frames are quantised to before the model sees them."""
    envs_per_seed: int = 1
    """Environments stepped together for each seed during data collection."""
    camera: int = 0
    """Control Suite camera the frames are rendered from (0 as in the paper; quadruped: 2, see README)."""
    env_workers: int = 0
    """Worker processes that step (and render) the environments of a batch concurrently; 0 steps them in this process. The results are the same either way."""
    env_module: str = ""
    """Python module imported before the task is looked up, for tasks it registers with planet_jax.io.envs.register."""


@dataclass(frozen=True)
class ModelConfig:
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
    state_layers: int = 2
    """Hidden layers of the MLP encoder and decoder used for `obs=state`."""
    state_units: int = 300
    """Units of the MLP encoder and decoder used for `obs=state`; also its embedding size."""
    reward_layers: int = 3
    """Hidden layers of the reward MLP."""
    reward_units: int = 300
    """Units per hidden layer of the reward MLP."""
    min_std: float = 0.1
    """Floor added to the softplus standard deviation of the prior and posterior."""
    matmul_precision: Literal["default", "float32", "tensorfloat32", "bfloat16"] = "default"
    """Precision of the float32 matrix products and convolutions in the update and the planner: `default` (the backend's fastest: float32 on CPUs, TensorFloat-32 on NVIDIA GPUs since Ampere, one bfloat16 pass on TPUs), `float32` (full float32, as the official code ran on a V100), `tensorfloat32`, `bfloat16`. Runs and benchmarks record what it resolved to."""
    conv_impl: Literal["auto", "matmul", "xla"] = "auto"
    """How convolutions run: `matmul` (the exact matmul and stride-1 forms of `convs.py`; called `cpu` before 2026-12-02, which still loads), `xla` (lax convolutions), `auto`: `matmul` on CPU and GPU (faster on both), `xla` on TPU (experiments/results/README.md#backend-defaults)."""


@dataclass(frozen=True)
class LossConfig:
    """The variational objective."""

    free_nats: float = 3.0
    """Per-step KL below this many nats is not penalised."""
    image_scale: float = 1.0
    """Weight of the image log-likelihood."""
    reward_scale: float = 10.0
    """Weight of the reward log-likelihood."""
    kl_scale: float = 1.0
    """Weight of the KL term."""
    overshooting_distance: int = 0
    """Latent overshooting distance D; 0 or 1 keeps only the one-step KL (the final agent's default)."""
    overshooting_kl_scale: float = 1.0
    """Weight beta of the KL terms for distances d > 1 (d = 1 has weight 1)."""


@dataclass(frozen=True)
class OptimConfig:
    """Adam with global-norm gradient clipping."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    adam_eps: float = 1e-4
    """Adam epsilon."""
    adam_form: Literal["tf1", "optax"] = "tf1"
    """Where Adam adds eps: `tf1` before the bias correction, as TF1's `tf.train.AdamOptimizer` in the official code (in bias-corrected terms eps / sqrt(1 - b2^t): 32x eps at the first update, within 1% of it after about 3900); `optax` after it (`optax.adam`)."""
    grad_clip: float = 1000.0
    """Global gradient norm above which gradients are rescaled."""


@dataclass(frozen=True)
class PlannerConfig:
    """The cross-entropy method in latent space."""

    horizon: int = 12
    """Planning horizon H in agent steps."""
    num_iterations: int = 10
    """CEM iterations I per action."""
    num_candidates: int = 1000
    """Candidate action sequences J per iteration."""
    num_elites: int = 100
    """Top K candidates that the action distribution is refitted to."""
    exploration_noise: float = 0.3
    """Std of Gaussian noise added to actions during data collection (never in tests)."""
    env_axis: Literal["auto", "vmap", "map"] = "auto"
    """How the searches of several environments run: `vmap` (one batched search), `map` (one after another, each search's candidates in the CPU's cache), `auto`: map on CPU, vmap elsewhere (experiments/results/README.md#backend-defaults)."""
    reward_pass: Literal["auto", "per_step", "after"] = "auto"
    """Where the search applies the reward head: `per_step` inside the rollout, `after` once over all steps' features (a shorter chain of kernels), `auto`: per_step on CPU, after elsewhere, the faster on each (experiments/results/README.md#backend-defaults)."""
    rollout_unroll: int = 0
    """Horizon steps per loop iteration of the candidates' rollout (`lax.scan(unroll=...)`); 0 = auto: fully unrolled on GPU/TPU, a loop on CPU, the faster on each (experiments/results/README.md#backend-defaults)."""


@dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    seed: int = 0
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
    """Hyperparameter sweep, e.g. ('learning_rate=1e-3,3e-4', 'free_nats=2,3'): every combination x every seed trains in one program."""
    replay_from: str = ""
    """Train on the episodes of another run (its directory, or one agent's replay directory), read-only; training starts at once, without random seed episodes."""
    collect: bool = True
    """Collect new episodes with the planner; false (with replay_from) trains on that replay alone, one cycle of C updates per "episode"."""


@dataclass(frozen=True)
class Config:
    """Everything a run needs; frozen and hashable, so it is a static jit argument."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

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
    shorter chunks, fewer updates per episode and a smaller search.

    cnn depth 16, h 100, z 16, hidden 100, reward MLP 2 x 100; B = 8 chunks of L = 32,
    C = 100 updates per episode (twice the updates of B = 16, C = 50 on the same frames,
    and faster per episode on a CPU: experiments/results/cpu-pixels-small-b8c100); CEM with
    H = 12, I = 6, J = 300, K = 30. A test phase every 5 episodes.
    """
    return Config(
        env=EnvConfig(task=task),
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


def preset(name: str, task: str = "cheetah-run") -> Config:
    """The named preset for a task: `paper`, `small` or `debug`."""
    presets = {"paper": paper, "small": small, "debug": debug}
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
# Sweeps.


def hyper_values(cfg: Config) -> dict[str, float]:
    """The sweepable fields' values in `cfg`."""
    paths = field_paths(cfg)
    return {name: float(getattr(getattr(cfg, paths[name][0]), name)) for name in SWEEPABLE}


def sweep_combos(cfg: Config) -> list[dict[str, float]]:
    """Every combination of the sweep's values (one empty dict without a sweep), in order."""
    combos: list[dict[str, float]] = [{}]
    for entry in cfg.train.sweep:
        name, _, values = entry.partition("=")
        name = name.strip().replace("-", "_")
        if name not in SWEEPABLE or not values:
            raise ConfigError(
                f"sweep entries are NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}; got {entry!r}."
            )
        try:
            parsed = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(f"sweep values of {name} must be numbers, got {values!r}.") from None
        combos = [{**c, name: v} for c in combos for v in parsed]
    return combos


def rows(cfg: Config) -> list[tuple[int, dict[str, float]]]:
    """The agents of a run: (seed, hyperparameters) for every combination x seed, combination-major."""
    base = hyper_values(cfg)
    return [(cfg.train.seed + i, {**base, **combo}) for combo in sweep_combos(cfg) for i in range(cfg.train.num_seeds)]


def row_name(cfg: Config, index: int) -> str:
    """`seed-S`, or `NAME=V,...-seed-S` within a sweep."""
    seed, hyper = rows(cfg)[index]
    combo = sweep_combos(cfg)[index // cfg.train.num_seeds]
    prefix = ",".join(f"{k}={hyper[k]:g}" for k in combo)
    return f"{prefix}-seed-{seed}" if prefix else f"seed-{seed}"


# ----------------------------------------------------------------------------------------
# Validation.

_CHOICES = {
    "obs": ("pixels", "state"),
    "variant": ("rssm", "ssm", "rnn"),
    "conv_impl": ("auto", "matmul", "xla"),
    "agent_axis": ("auto", "vmap", "map"),
    "env_axis": ("auto", "vmap", "map"),
    "reward_pass": ("auto", "per_step", "after"),
    "adam_form": ("tf1", "optax"),
    "matmul_precision": ("default", "float32", "tensorfloat32", "bfloat16"),
}
# Fields that may be zero (all other integer and float fields must be positive).
_NON_NEGATIVE = {
    "action_repeat",
    "env_workers",
    "camera",
    "rollout_unroll",
    "overshooting_distance",
    "overshooting_kl_scale",
    "free_nats",
    "image_scale",
    "reward_scale",
    "kl_scale",
    "min_std",
    "exploration_noise",
    "seed",
    "state_layers",
    "reward_layers",
    "grad_clip",
}


def validate(cfg: Config) -> Config:
    """Check every field; raise `ConfigError` naming the first bad one. Returns `cfg`."""
    paths = field_paths(cfg)
    defaults = Config()
    for name, (group, leaf) in paths.items():
        value = getattr(getattr(cfg, group), leaf)
        expected = type(getattr(getattr(defaults, group), leaf))
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ConfigError(f"{name} must be one of {', '.join(_CHOICES[name])}, got {value!r}.")
            continue
        if expected in (bool, tuple):
            if not isinstance(value, expected):
                raise ConfigError(f"{name} must be a {expected.__name__}, got {value!r}.")
            continue
        if name == "task":
            try:
                _tasks.import_env_module(cfg.env.env_module)
            except _tasks.TaskError as exc:
                raise ConfigError(str(exc)) from None
            found = _tasks.check(value)
            if cfg.env.obs == "state" and not found.state_size:
                raise ConfigError(f"task {value!r} has no flat state observation: use --obs pixels.")
            if cfg.env.obs == "pixels" and not found.pixels:
                raise ConfigError(f"task {value!r} does not render frames: use --obs state.")
            continue
        if expected is str:
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}.")
            continue
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name} must be an integer, got {value!r}.")
        if expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}.")
        lower = 0 if name in _NON_NEGATIVE else 1
        if expected is int and value < lower:
            raise ConfigError(f"{name} must be an integer >= {lower}, got {value!r}.")
        if expected is float and (value < 0 if name in _NON_NEGATIVE else value <= 0):
            bound = ">= 0" if name in _NON_NEGATIVE else "> 0"
            raise ConfigError(f"{name} must be a number {bound}, got {value!r}.")

    p, t, e = cfg.planner, cfg.train, cfg.env
    if p.num_elites > p.num_candidates:
        raise ConfigError(f"num_elites must be at most num_candidates ({p.num_candidates}), got {p.num_elites}.")
    if e.episode_steps > 1000:
        raise ConfigError(f"episode_steps must be at most 1000 (the suite's episode), got {e.episode_steps}.")
    if e.obs == "pixels" and e.image_size != 64:
        raise ConfigError(f"image_size must be 64 for the convolutional model, got {e.image_size}.")
    if e.image_bits > 8:
        raise ConfigError(f"image_bits must be between 1 and 8, got {e.image_bits}.")
    if t.chunk_length > cfg.episode_length:
        raise ConfigError(
            f"chunk_length must be at most the episode length ({cfg.episode_length} agent steps), got {t.chunk_length}."
        )
    if t.seed_episodes > t.episodes:
        raise ConfigError(f"seed_episodes must be at most episodes ({t.episodes}), got {t.seed_episodes}.")
    if cfg.loss.overshooting_distance > t.chunk_length:
        raise ConfigError(
            f"overshooting_distance must be at most chunk_length ({t.chunk_length}), "
            f"got {cfg.loss.overshooting_distance}."
        )
    for _, hyper in rows(cfg):
        for name, value in hyper.items():
            if value < 0 or (value == 0 and name not in _NON_NEGATIVE) or not math.isfinite(value):
                raise ConfigError(f"sweep value {name}={value:g} is out of range.")
    if not t.collect and not t.replay_from:
        raise ConfigError("collect=false needs replay_from: without collecting there is nothing to train on.")
    if t.train_steps % t.updates_per_call:
        raise ConfigError(f"updates_per_call must divide train_steps ({t.train_steps}), got {t.updates_per_call}.")
    return cfg
