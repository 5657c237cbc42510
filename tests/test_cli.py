"""Every command-line field of `planet_jax.train`, generated from the dataclasses: a value of
the wrong type or out of range is one sentence naming the field, exit code 2, before any
trainer is built; the defaults themselves are accepted."""

import dataclasses
import typing

import pytest

import planet_jax.train as train
from planet_jax import config as C


def _fields():
    """(flag, field name, annotation, default) of every field the command takes."""
    out = []
    groups = [(train.TrainArgs, train.TrainArgs(config=C.Config()))]
    groups += [(f.default_factory, f.default_factory()) for f in dataclasses.fields(C.Config)]
    for cls, instance in groups:
        for name, kind in typing.get_type_hints(cls).items():
            if name != "config":
                out.append(("--" + name.replace("_", "-"), name, kind, getattr(instance, name)))
    return out


FIELDS = _fields()


def _bad_values(name, kind):
    """(value, what the message must say) pairs that must be refused."""
    if kind is bool:
        return [("3", "is a switch")]
    if typing.get_origin(kind) is typing.Literal:
        return [("bogus", "must be one of " + ", ".join(typing.get_args(kind)))]
    if typing.get_origin(kind) is tuple:
        return [("nonsense", "sweep entries are NAME=V1,V2")]
    if kind is int:
        low = {"process_id": -2}.get(name, -1)
        return [("1.5", "expects an integer"), ("many", "expects an integer"), (str(low), "must be an integer >=")]
    if kind is float:
        return [("fast", "expects a number"), ("inf", "expects a finite number"), ("-1", "must be a number")]
    if name == "task":
        return [("pong", "unknown task 'pong'")]
    if name == "env_module":
        return [("no_such_module_xyz", "could not be imported")]
    if name == "replay_from":
        return [("/no/such/run", "is not a directory")]
    return []  # free-form strings (logdir, coordinator address, W&B project and entity)


CASES = [
    pytest.param(flag, name, value, says, id=f"{name}={value}")
    for flag, name, kind, _ in FIELDS
    for value, says in _bad_values(name, kind)
]


def test_every_field_is_covered():
    assert len(FIELDS) == len({f for f, *_ in FIELDS}) > 60
    untested = {name for _, name, kind, _ in FIELDS if not _bad_values(name, kind)}
    assert untested == {"logdir", "coordinator_address", "wandb_project", "wandb_entity"}  # free-form names


@pytest.mark.parametrize("flag, name, value, says", CASES)
def test_a_bad_value_is_one_sentence_and_exit_2(flag, name, value, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "Trainer", lambda *a, **k: pytest.fail("the trainer was built"))
    argv = ["--preset", "debug", flag, value, "--logdir", str(tmp_path / "run")]
    if name == "sweep":
        argv = ["--preset", "debug", "--sweep", value, "--logdir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("error: ") and err.endswith(".\n") and err.count("\n") == 1, err
    assert flag in err or f"{name} " in err or name == "sweep", err
    assert says in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, name, kind, default", [pytest.param(*f, id=f[1]) for f in FIELDS])
def test_the_default_value_passes_the_check(flag, name, kind, default):
    if kind is bool:
        argv = [flag] if default else ["--no-" + flag[2:]]
    elif typing.get_origin(kind) is tuple:
        argv = [flag, "learning_rate=1e-3,3e-4"]
    else:
        argv = [flag, str(default)]
    train.check_argv(argv)
    train.check_argv([f"{argv[0]}={argv[1]}"] if len(argv) == 2 and kind is not bool else argv)


def test_unknown_options_and_stray_values_are_one_sentence(capsys):
    for argv, says in (
        (["--horizn", "3"], "unknown option --horizn"),
        (["stray"], "unexpected argument 'stray'"),
        (["--horizon"], "--horizon needs a value (an integer)"),
        (["--no-horizon"], "unknown option --no-horizon"),
    ):
        with pytest.raises(SystemExit) as exit_:
            train.parse_args(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and says in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "command, argv, says",
    [
        ("evaluate", ["--episodes", "2"], "--logdir is required"),
        ("evaluate", ["--logdir", "x", "--episodes", "0"], "--episodes must be an integer >= 1, got 0"),
        ("evaluate", ["--logdir", "x", "--seed-index", "one"], "--seed-index expects an integer, got 'one'"),
        ("evaluate", ["--logdir", "x", "--videos=1", "--wandb=yes"], "--wandb is a switch"),
        ("bench", [], "case is required (one of envs, update"),
        ("bench", ["plan"], "case must be one of envs, update"),
        ("bench", ["update", "--batch", "16", "x"], "--batch expects an integer, got 'x'"),
        ("bench", ["update", "--repeats", "0"], "--repeats must be an integer >= 1"),
        ("bench", ["update", "--obs", "rgb"], "--obs must be one of pixels, state"),
        ("bench", ["update", "stray"], "unexpected argument 'stray'"),
    ],
)
def test_evaluate_and_bench_share_the_one_sentence_checks(command, argv, says, capsys):
    import importlib

    module = importlib.import_module(f"planet_jax.{command}")
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and says in err and err.count("\n") == 1, err


def test_evaluate_and_bench_parse_into_their_dataclasses():
    from planet_jax import bench, evaluate

    args = evaluate.parse_args(["--logdir", "runs/x", "--seed-index", "1", "--no-compile-cache"])
    assert (args.logdir, args.seed_index, args.step, args.compile_cache) == ("runs/x", 1, None, False)
    args = bench.parse_args(["planner", "--envs", "1", "4", "--set", "horizon=3", "--set", "reward_units=48"])
    assert (args.case, args.envs, args.set) == ("planner", (1, 4), ("horizon=3", "reward_units=48"))
    assert typing.get_args(bench.Case) == (*bench.CASES, "all")
