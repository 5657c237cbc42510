"""The benchmark suite runs end to end and writes the shared record for every case."""

import json
import subprocess
import sys

import pytest

KEYS = {"name", "device", "median_s", "min_s", "max_s", "gflop", "achieved_gflops", "matmul_gflops"}


@pytest.mark.slow
def test_bench_all_writes_every_case(tmp_path):
    path = tmp_path / "all.json"
    command = [sys.executable, "-m", "planet_jax.bench", "all", "--preset", "debug", "--task", "cartpole-balance",
               "--obs", "state", "--json", str(path), "--repeats", "2", "--long-repeats", "1", "--steps", "5",
               "--envs", "1", "--seeds", "1", "2", "--episode-steps", "200", "--train-steps", "4",
               "--updates-per-call", "2", "--matmul-size", "512", "--stored", "12"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in json.loads(path.read_text())}
    assert set(records) == {
        "envs/cartpole-balance/n=1",
        "update/debug/B=8",
        "planner/debug/envs=1",
        "sweep/debug/update/N=1",
        "sweep/debug/act/N=1",
        "sweep/debug/update/N=2",
        "sweep/debug/act/N=2",
        "episode/debug/cartpole-balance",
        "cycle/debug/cartpole-balance",
        "replay/disk-warm",
        "replay/disk-cold",
        "replay/memory",
    }
    for r in records.values():
        assert KEYS <= r.keys(), r["name"]
        assert r["device"].startswith(("cpu", "host")) and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        if not r["name"].startswith(("envs/", "replay/")):  # compared with the matmul rate read around the case
            before, after = r["matmul_readings"]
            assert before > 0 and after > 0 and r["matmul_gflops"] == pytest.approx((before + after) / 2)
    for what in ("update", "act"):
        one, two = records[f"sweep/debug/{what}/N=1"], records[f"sweep/debug/{what}/N=2"]
        assert two["agents"] == 2 and two["agent_axis"] == "map"
        assert two["speedup_vs_separate_runs"] == pytest.approx(2 * one["median_s"] / two["median_s"])
    cycle = records["cycle/debug/cartpole-balance"]
    assert (cycle["train_steps"], cycle["agent_steps"], cycle["episode_steps"]) == (4, 25, 200)
    assert records["episode/debug/cartpole-balance"]["ms_per_agent_step"] > 0
    for case in ("disk-warm", "disk-cold", "memory"):
        replay = records[f"replay/{case}"]
        assert replay["stored"] == 12 and replay["batches_per_s"] == pytest.approx(2 / replay["median_s"])
        assert {"rss_anon_growth_mb", "stored_mb", "mb_per_call"} <= replay.keys()  # (memory: test_replay)
    assert "device: cpu" in out.stdout


@pytest.mark.slow
def test_bench_set_overrides_a_field_and_is_recorded(tmp_path):
    from planet_jax import bench

    path = tmp_path / "planner.json"
    base = ["planner", "--preset", "debug", "--obs", "state", "--envs", "1", "--repeats", "1", "--json", str(path),
            "--matmul-size", "512"]  # fmt: skip
    assert bench.main([*base, "--set", "reward_units=48", "--set", "horizon=3"]) == 0
    (record,) = json.loads(path.read_text())
    assert record["overrides"] == ["reward_units=48", "horizon=3"] and record["horizon"] == 3
    assert record["matmul_size"] == 512  # the rate it was read against, recorded
    args = bench.parse_args([*base, "--set", "reward_units=48", "--set", "horizon=3"])
    cfg = bench._bench_config(args)
    assert (cfg.model.reward_units, cfg.planner.horizon) == (48, 3)
    assert record["gflop"] == pytest.approx(bench.plan_gflop(cfg))


@pytest.mark.slow
def test_bench_planner_times_the_batch_sizes_in_turns(tmp_path):
    from planet_jax import bench

    path = tmp_path / "planner.json"
    argv = ["planner", "--preset", "debug", "--obs", "state", "--envs", "3", "--repeats", "3", "--json", str(path),
            "--matmul-size", "512"]  # fmt: skip
    assert bench.main([*argv, "--set", "env_axis=vmap"]) == 0
    one, three = json.loads(path.read_text())
    assert (one["envs"], three["envs"]) == (1, 3) and one["env_axis"] == three["env_axis"] == "vmap"
    assert one["rollout_unroll"] == 1  # auto, resolved: a loop on the CPU the tests run on
    assert one["reward_pass"] == "per_step"  # auto, resolved for the CPU
    assert one["x_one_env"] == 1.0 and three["x_one_env"] > 0
    assert one["matmul_readings"] == three["matmul_readings"]  # read around the shared block
    assert three["ms_per_env_action"] == pytest.approx(three["ms_per_action"] / 3)
    # One matmul reading per round of turns, and each call's rate over the reading before it.
    assert len(one["matmul_per_round"]) == 3 and one["matmul_per_round"] == three["matmul_per_round"]
    paired = [one["gflop"] / t / rate for t, rate in zip(one["times_s"], one["matmul_per_round"])]
    assert one["of_matmul_paired"] == pytest.approx(sorted(paired)[1])


@pytest.mark.parametrize("bad", ["reward_units=lots", "no_such_field=1", "horizon", "sweep=free_nats=2,3"])
def test_bench_refuses_bad_overrides(bad, capsys):
    from planet_jax import bench

    assert bench.main(["planner", "--preset", "debug", "--set", bad]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_envs_steps_in_this_process_and_in_workers(tmp_path):
    from planet_jax import bench

    path = tmp_path / "envs.json"
    argv = ["envs", "--preset", "debug", "--task", "cartpole-balance", "--obs", "state", "--envs", "1", "2",
            "--env-workers", "2", "--steps", "3", "--repeats", "1", "--json", str(path)]  # fmt: skip
    assert bench.main(argv) == 0
    records = {r["name"]: r for r in json.loads(path.read_text())}
    assert set(records) == {"envs/cartpole-balance/n=1", "envs/cartpole-balance/n=2",
                            "envs/cartpole-balance/n=2/workers=2"}  # fmt: skip
    assert records["envs/cartpole-balance/n=2/workers=2"]["workers"] == 2
    assert all(r["frames_per_s"] > 0 for r in records.values())
