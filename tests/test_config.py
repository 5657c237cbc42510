import dataclasses

import pytest

from planet_jax import config as C
from planet_jax.io import tasks


def test_paper_preset_matches_design():
    cfg = C.validate(C.preset("paper", "cheetah-run"))
    assert cfg.action_repeat == 4 and cfg.episode_length == 250
    assert (cfg.model.deter_size, cfg.model.stoch_size, cfg.model.hidden_size, cfg.embed_size) == (200, 30, 200, 1024)
    assert (cfg.planner.horizon, cfg.planner.num_iterations, cfg.planner.num_candidates, cfg.planner.num_elites) == (
        12,
        10,
        1000,
        100,
    )
    assert (cfg.train.batch_size, cfg.train.chunk_length, cfg.train.train_steps, cfg.train.seed_episodes) == (
        50,
        50,
        100,
        5,
    )
    assert (cfg.loss.free_nats, cfg.loss.reward_scale, cfg.optim.learning_rate, cfg.optim.adam_eps) == (
        3.0,
        10.0,
        1e-3,
        1e-4,
    )
    repeats = {t: C.preset("paper", t).action_repeat for t in tasks.PAPER_TASKS}
    assert repeats == {
        "cartpole-swingup": 8,
        "cartpole-balance": 8,
        "reacher-easy": 4,
        "cheetah-run": 4,
        "finger-spin": 2,
        "cup-catch": 4,
        "walker-walk": 2,
    }


def test_paper_preset_follows_the_official_optimizer_and_precision():
    cfg = C.preset("paper")
    assert (cfg.optim.adam_form, cfg.optim.grad_clip, cfg.model.matmul_precision) == ("tf1", 1000.0, "default")


def test_small_preset_keeps_the_objective_but_free_nats_and_validates_for_every_task():
    for task in tasks.PAPER_TASKS:
        cfg = C.validate(C.preset("small", task))
        assert cfg.env.obs == "pixels" and cfg.embed_size == 512  # cnn depth 16
        assert cfg.train.chunk_length <= cfg.episode_length
    small, paper = C.preset("small"), C.preset("paper")
    assert (small.optim, small.env) == (paper.optim, paper.env)
    assert small.loss == C.replace(paper, free_nats=1.0).loss  # the one change to the objective
    assert (small.train.batch_size, small.train.chunk_length, small.train.train_steps) == (8, 32, 100)


def test_quick_preset_is_the_measured_swingup_state_configuration():
    # The flags of experiments/results/cpu-state-ab-objective's swingup runs, on `debug`.
    flags = {
        "obs": "state", "seed_episodes": 4, "train_steps": 100, "updates_per_call": 50, "batch_size": 32,
        "chunk_length": 32, "deter_size": 64, "stoch_size": 16, "hidden_size": 64, "reward_units": 64,
        "state_units": 64, "horizon": 12, "test_every": 4, "episodes": 20, "num_candidates": 300,
        "num_elites": 30, "num_iterations": 6, "test_episodes": 5, "checkpoint_every": 4,
    }  # fmt: skip
    measured = C.replace(C.preset("debug", "cartpole-swingup"), **flags)
    quick = C.validate(C.preset("quick", "cartpole-swingup"))
    assert C.replace(quick, cnn_depth=measured.model.cnn_depth) == measured
    assert (quick.loss, quick.optim) == (C.paper().loss, C.paper().optim)  # the official objective


def test_config_is_hashable_and_round_trips_through_json():
    import json

    cfg = C.replace(C.preset("debug", "walker-walk"), sweep=("free_nats=1,2",))
    back = C.from_dict(json.loads(json.dumps(C.to_dict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)


def test_a_config_json_from_before_a_rename_loads_under_the_new_name():
    # conv_impl="cpu" (before 2026-12-02) is today's "matmul"; the CLI knows only the new name.
    old = C.to_dict(C.preset("debug"))
    old["model"]["conv_impl"] = "cpu"
    assert C.from_dict(old).model.conv_impl == "matmul"
    with pytest.raises(C.ConfigError, match="conv_impl must be one of auto, matmul, xla"):
        C.validate(C.replace(C.preset("debug"), conv_impl="cpu"))


def test_replace_and_diff():
    cfg = C.paper()
    new = C.replace(cfg, horizon=8, learning_rate=3e-4)
    assert new.planner.horizon == 8 and new.optim.learning_rate == 3e-4
    assert C.diff(cfg, new) == ["learning_rate: 0.001 -> 0.0003", "horizon: 12 -> 8"]
    with pytest.raises(C.ConfigError, match="unknown config field 'horizn'"):
        C.replace(cfg, horizn=3)


@pytest.mark.parametrize(
    "updates, message",
    [
        ({"deter_size": -1}, "deter_size must be an integer >= 1"),
        ({"num_candidates": 0}, "num_candidates must be an integer >= 1"),
        ({"num_elites": 1001}, r"num_elites must be at most num_candidates \(1000\)"),
        ({"learning_rate": "fast"}, "learning_rate must be a finite number"),
        ({"learning_rate": -1e-3}, "learning_rate must be a number > 0"),
        ({"task": "cheetah-walk"}, "unknown task 'cheetah-walk': did you mean cheetah-run, humanoid-walk, walker-walk"),
        ({"obs": "rgb"}, "obs must be one of pixels, state"),
        ({"variant": "lstm"}, "variant must be one of rssm, ssm, rnn"),
        ({"chunk_length": 300}, r"chunk_length must be at most the episode length \(250"),
        ({"updates_per_call": 7}, r"updates_per_call must divide train_steps \(100\)"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
    ],
)
def test_bad_values_are_rejected(updates, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(C.replace(C.paper(), **updates))


def test_unknown_preset_and_task():
    with pytest.raises(C.ConfigError, match="unknown preset 'huge': choose one of paper, small, quick, debug"):
        C.preset("huge")
    with pytest.raises(C.ConfigError, match="unknown task 'pong': give a Control Suite task as DOMAIN-TASK"):
        C.preset("paper", "pong")


def test_every_field_documented():
    # Each leaf needs a docstring so the command line's --help explains it.
    import inspect

    for group in dataclasses.fields(C.Config):
        source = inspect.getsource(group.default_factory)
        for leaf in dataclasses.fields(group.default_factory):
            assert f"    {leaf.name}:" in source
            after = source.split(f"    {leaf.name}:", 1)[1].split("\n", 2)[1]
            assert after.strip().startswith('"""'), f"{leaf.name} has no docstring"


def test_every_preset_is_offered_by_train_and_bench():
    import typing

    from planet_jax.bench import BenchArgs
    from planet_jax.train import TrainArgs

    for args in (TrainArgs, BenchArgs):
        assert typing.get_args(typing.get_type_hints(args)["preset"]) == C.PRESETS
