"""Seeds and hyperparameter sweeps in one program, sharded over devices."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import TIMING_KEYS, tiny_run
from planet_jax import config as C
from planet_jax import sweeps
from planet_jax.io.logger import MetricsLog

TINY = tiny_run(episodes=3, test_every=2, test_episodes=2)
AGENT = {"seed", "row", "combo", "learning_rate", "free_nats"}


def _run(logdir, *extra, env=None):
    out = subprocess.run(
        [sys.executable, "-m", "planet_jax.train", *TINY, "--logdir", str(logdir), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return MetricsLog.read(str(logdir))


def _agent(records, **match):
    rows = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS | AGENT} for r in rows]


@pytest.fixture(scope="module")
def four_seeds(tmp_path_factory):
    """A 4-seed run in one process on one device, read by two tests (one run per worker that draws them)."""
    logdir = tmp_path_factory.mktemp("sweeps") / "four"
    return logdir, _run(logdir, "--num-seeds", "4")


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    """A two-row learning-rate sweep, read by two tests (one run per worker that draws them)."""
    logdir = tmp_path_factory.mktemp("sweeps") / "lr"
    return logdir, _run(logdir, "--sweep", "learning_rate=1e-3,3e-4")


@pytest.mark.slow
def test_seed_i_of_a_sweep_equals_a_single_run_with_seed_i(four_seeds, tmp_path):
    _, sweep = four_seeds
    assert {r["seed"] for r in sweep} == {0, 1, 2, 3}
    # The last agent: its keys, replay and parameters are found by index, not as the first.
    single = _run(tmp_path / "single3", "--seed", "3")
    assert _agent(sweep, seed=3) == _agent(single)  # exactly, update and act
    assert _agent(sweep, seed=0) != _agent(sweep, seed=1)


@pytest.mark.slow
def test_learning_rate_sweep_equals_separate_runs(lr_sweep, tmp_path):
    logdir, sweep = lr_sweep
    assert sorted(os.listdir(logdir / "replay")) == [
        "learning_rate=0.0003-seed-0",
        "learning_rate=0.001-seed-0",
    ]
    # The second row (not the config's own value): the swept value reaches that row's updates.
    single = _run(tmp_path / "lr3e-4", "--learning-rate", "3e-4")
    assert _agent(sweep, learning_rate=3e-4) == _agent(single)
    losses = [[r["loss"] for r in sweep if r["kind"] == "update" and r["learning_rate"] == lr] for lr in (1e-3, 3e-4)]
    assert losses[0] != losses[1]


# Every sweepable field but the learning rate (tested above), as a one-row sweep: each value
# must reach the computation through the row's hyperparameters exactly as the same value
# given as a flag does; a field read from the static config instead would keep its default.
OTHER_SWEEPABLE = {
    "adam_eps": "1e-2",
    "grad_clip": "0.5",
    "free_nats": "1",
    "image_scale": "0.5",
    "reward_scale": "3",
    "kl_scale": "0.7",
    "overshooting_kl_scale": "0.5",
    "exploration_noise": "0.1",
}


@pytest.mark.slow
def test_every_other_sweepable_field_reaches_the_computation(tmp_path):
    assert set(OTHER_SWEEPABLE) == set(sweeps.SWEEPABLE) - {"learning_rate"}
    common = ("--overshooting-distance", "3")  # so that overshooting_kl_scale counts
    swept = _run(tmp_path / "sweep", *common, "--sweep", *(f"{k}={v}" for k, v in OTHER_SWEEPABLE.items()))
    flags = [x for k, v in OTHER_SWEEPABLE.items() for x in (f"--{k.replace('_', '-')}", v)]
    single = _run(tmp_path / "flags", *common, *flags)
    default = _run(tmp_path / "default", *common)
    strip = lambda records: [{k: v for k, v in r.items() if k not in OTHER_SWEEPABLE} for r in _agent(records)]  # noqa: E731
    assert strip(swept) == strip(single)
    assert strip(swept) != strip(default)


@pytest.mark.slow
def test_agent_axis_vmap_trains_on_cpu_as_map_does(tmp_path):
    """The GPU default, batched agents, run on a CPU: the same run as one agent after another
    up to float32 rounding (the batched kernels sum in another order)."""
    mapped = _run(tmp_path / "map", "--num-seeds", "2", "--agent-axis", "map")
    vmapped = _run(tmp_path / "vmap", "--num-seeds", "2", "--agent-axis", "vmap")
    _assert_same_run(vmapped, mapped)


@pytest.mark.slow
def test_several_environments_per_seed(tmp_path):
    """--envs-per-seed 2: each cycle collects two distinct episodes per agent, counted as two."""
    from planet_jax.io.replay import Replay

    records = _run(tmp_path / "two", "--envs-per-seed", "2", "--episodes", "4", "--num-seeds", "2")
    trains = [r for r in records if r["kind"] == "train_episode" and r["seed"] == 1]
    assert [(r["episode"], r["env_steps"]) for r in trains] == [(2, 400), (4, 800)]
    assert [r["episode"] for r in records if r["kind"] == "update" and r["seed"] == 1] == [4]
    for seed in (0, 1):
        replay = Replay.load(tmp_path / "two" / "replay" / f"seed-{seed}")
        assert len(replay) == 4
        third, fourth = replay.episodes[2], replay.episodes[3]  # the two planned ones
        assert not np.array_equal(third["obs"], fourth["obs"])
        assert not np.array_equal(third["action"], fourth["action"])


@pytest.mark.slow
def test_sweep_rows_json_and_evaluating_one_row(lr_sweep):
    import json

    from planet_jax.evaluate import main as evaluate_main

    logdir, _ = lr_sweep
    rows = json.load(open(logdir / "rows.json"))
    names = ["learning_rate=0.001-seed-0", "learning_rate=0.0003-seed-0"]
    assert [r["name"] for r in rows] == names and [r["learning_rate"] for r in rows] == [1e-3, 3e-4]
    assert [r["row"] for r in rows] == [0, 1] and {r["seed"] for r in rows} == {0}
    assert evaluate_main(["--logdir", str(logdir), "--episodes", "1", "--seed-index", "1", "--videos", "0"]) == 0
    assert os.listdir(logdir / "eval" / "step-3") == [names[1]]
    result = json.load(open(logdir / "eval" / "step-3" / names[1] / "returns.json"))
    assert result["step"] == 3 and len(result["returns"]) == 1
    assert evaluate_main(["--logdir", str(logdir), "--seed-index", "2"]) == 2  # only rows 0 and 1


def test_sweep_rows_and_validation():
    cfg = C.replace(C.preset("debug"), sweep=("learning_rate=1e-3,3e-4", "free_nats=2,3"), num_seeds=2)
    rows = sweeps.rows(C.validate(cfg))
    assert len(rows) == 8
    assert rows[0] == (0, {**sweeps.hyper_values(cfg), "learning_rate": 1e-3, "free_nats": 2.0})
    assert rows[7] == (1, {**sweeps.hyper_values(cfg), "learning_rate": 3e-4, "free_nats": 3.0})
    assert sweeps.row_name(cfg, 5) == "learning_rate=0.0003,free_nats=2-seed-1"
    with pytest.raises(C.ConfigError, match="NAME one of learning_rate"):
        C.validate(C.replace(cfg, sweep=("horizon=3,4",)))
    with pytest.raises(C.ConfigError, match="sweep values of free_nats must be numbers"):
        C.validate(C.replace(cfg, sweep=("free_nats=a,b",)))
    with pytest.raises(C.ConfigError, match="sweep value learning_rate=-1 is out of range"):
        C.validate(C.replace(cfg, sweep=("learning_rate=-1",)))


def _assert_same_run(a_records, b_records):
    assert len(a_records) == len(b_records)
    for a, b in zip(a_records, b_records):
        assert a.keys() == b.keys() and a["kind"] == b["kind"] and a["seed"] == b["seed"]
        for k in a.keys() - TIMING_KEYS:
            # Equal up to float32 rounding: per-device batches of 1 vs one batch of 4.
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k) if isinstance(a[k], float) else None
            assert isinstance(a[k], float) or a[k] == b[k], k


def _distributed(logdir, processes, *extra, devices_each=1):
    """`processes` local processes of one --distributed run (coordinator on localhost)."""
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_each}")
    command = [sys.executable, "-m", "planet_jax.train", *TINY, "--logdir", str(logdir), *extra, "--distributed",
               "--coordinator-address", f"localhost:{port}", "--num-processes", str(processes)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for i in range(processes)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return outs


@pytest.mark.slow
def test_agents_sharded_over_devices_and_processes_equal_one_device(four_seeds, tmp_path):
    one, single = four_seeds
    # Two processes with two devices each: the agents are sharded over the devices of each
    # process (as on one multi-device host) and over the processes; each process steps the
    # environments of its 2 agents.
    outs = _distributed(tmp_path / "dist", 2, "--num-seeds", "4", devices_each=2)
    _assert_same_run(MetricsLog.read(str(tmp_path / "dist")), single)
    assert "done: 3 episodes" in outs[0][0] and "done:" not in outs[1][0]  # process 0 reports
    assert sorted(os.listdir(tmp_path / "dist" / "replay")) == [f"seed-{i}" for i in range(4)]
    # The checkpoint both processes wrote restores in one process, every agent of it.
    from planet_jax.evaluate import load_run

    _, state, step = load_run(str(tmp_path / "dist"), None)
    assert step == 3 and state.step.tolist() == [10] * 4
    # Agent by agent, the same parameters as the one-process run: agents permuted between
    # the processes (or devices) would fail here.
    _, reference, _ = load_run(str(one), None)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_agent_count_that_does_not_divide_the_devices_is_handled(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "planet_jax.train",
            *TINY,
            "--episodes",
            "2",
            "--num-seeds",
            "3",
            "--logdir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "3 agents do not divide over 4 devices: using 3 of them" in out.stderr
