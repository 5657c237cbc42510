"""experiments/gpu scripts: breakdown.py's choice of the form that `bench planner` then runs on a GPU and
of the fastest correct kernel launch, and xla_options.py's reading of the Triton tiles XLA chose."""

import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "gpu", "breakdown.py")


def _script(name):
    """experiments/gpu/NAME.py as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments", "gpu", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


XLA = dict(reward_pass="after")
PER_STEP = dict(reward_pass="per_step")
FAST = dict(block=16, warps=8)
FASTER = dict(block=32, warps=8)
RECORDS = [
    dict(name="xla", envs=1, overrides=XLA, ms=5.1),
    dict(name="xla per step", envs=1, overrides=PER_STEP, ms=5.6),
    dict(name="xla 4", envs=4, overrides=PER_STEP, ms=1.0),  # not one env
    dict(name="kernel", envs=1, overrides={}, launch=FAST, ms=3.0, max_abs_diff_vs_imagine=4e-7),
    dict(name="kernel 4", envs=4, overrides={}, launch=FASTER, ms=1.0, max_abs_diff_vs_imagine=4e-7),  # not one env
    dict(name="fixed cost", ms=0.6),  # a part, not a form
]


def test_the_fastest_xla_form_for_one_environment_is_picked_for_bench():
    fastest_form = _script("breakdown").fastest_form
    # The faster kernel is experimental: bench cannot run it, so it is never the pick.
    assert fastest_form(RECORDS) == XLA
    assert fastest_form([r for r in RECORDS if r["name"] != "xla"]) == PER_STEP
    assert fastest_form([r for r in RECORDS if "launch" in r]) is None
    assert fastest_form([]) is None


def test_the_fastest_correct_kernel_launch_is_reported():
    fastest_kernel = _script("breakdown").fastest_kernel
    assert fastest_kernel(RECORDS) == FAST
    # A faster kernel whose states drifted from imagine's, or that failed its check, is never picked.
    wrong = dict(name="wrong", envs=1, overrides={}, launch=FASTER, ms=2.0, max_abs_diff_vs_imagine=2e-3)
    broken = dict(name="broken", envs=1, overrides={}, launch=FASTER, ms=1.5, max_abs_diff_vs_imagine="ValueError: ...")
    assert fastest_kernel([*RECORDS, wrong, broken]) == FAST
    assert fastest_kernel([*RECORDS, dict(wrong, max_abs_diff_vs_imagine=1e-5)]) == FASTER
    assert fastest_kernel([r for r in RECORDS if r["name"] != "kernel"]) is None


def test_pick_prints_the_flags_that_run_sh_passes_to_bench_planner(tmp_path):
    path = tmp_path / "breakdown.json"
    path.write_text(json.dumps(dict(records=RECORDS)))
    out = subprocess.run([sys.executable, SCRIPT, "--pick", str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["--set", "reward_pass=after"]
    assert "fastest correct rollout kernel launch: {'block': 16, 'warps': 8}" in out.stderr


def test_triton_tiles_are_read_from_the_optimised_hlo():
    gemm = (
        "  %gemm_fusion_dot.{i} = f32[1000,672]{{1,0}} fusion(%p0, %p1), kind=kCustom, calls=%fused_dot, "
        'backend_config={{"operation_queue_id":"0","fusion_backend_config":{{"kind":"__triton_gemm",'
        '"triton_gemm_config":{{"block_m":"{m}","block_n":"{n}","block_k":"32","split_k":"{k}","num_stages":"4",'
        '"num_warps":"4","num_ctas":"1"}}}}}}'
    )
    hlo = "\n".join(
        [gemm.format(i=0, m=64, n=64, k=1), gemm.format(i=1, m=16, n=32, k=2), gemm.format(i=2, m=64, n=64, k=1)]
        + ["  %loop_add_fusion = f32[1000,224]{1,0} fusion(%a, %b), kind=kLoop, calls=%fused_add"]
    )
    tile_sizes = _script("xla_options").tile_sizes
    assert tile_sizes(hlo) == {"64x64x32 split_k 1": 2, "16x32x32 split_k 2": 1}
    assert tile_sizes("") == {}
