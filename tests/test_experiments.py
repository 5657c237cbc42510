"""The paper-protocol scripts on tiny runs that the test makes itself."""

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import tiny_run
from planet_jax.io.logger import MetricsLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "paper.py")
TINY = tiny_run(task=None, episodes=4, num_seeds=2, test_every=2, test_episodes=2)


@pytest.mark.slow
def test_run_and_table_on_real_run_directories(tmp_path):
    root = tmp_path / "paper"
    # One real run, and a copy of it under another task's name: the table has two rows.
    for task in ("reacher-easy",):
        out = subprocess.run(
            [sys.executable, SCRIPT, "run", "--task", task, "--root", str(root), "--", *TINY],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
    import json
    import shutil

    shutil.copytree(root / "reacher-easy", root / "cartpole-balance")
    cfg_path = root / "cartpole-balance" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["env"]["task"] = "cartpole-balance"
    cfg_path.write_text(json.dumps(cfg))
    table_path = tmp_path / "table.md"
    out = subprocess.run(
        [sys.executable, SCRIPT, "table", "--root", str(root), "--out", str(table_path), "--milestones", "2,4,1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text = table_path.read_text()
    assert os.path.getsize(tmp_path / "table.png") > 0
    for task in ("cartpole-balance", "reacher-easy"):
        tests = [r for r in MetricsLog.read(str(root / task)) if r["kind"] == "test"]
        assert {r["seed"] for r in tests} == {0, 1}
        row = next(line for line in text.splitlines() if line.startswith(f"| {task} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:4] == ["state", "2", "4"]
        for milestone, cell in ((2, cells[4]), (4, cells[5])):
            values = [r["return"] for r in tests if r["episode"] == milestone]
            mean, se = np.mean(values), np.std(values, ddof=1) / np.sqrt(2)
            assert cell == f"{mean:.0f} +- {se:.0f}"
        assert cells[6] == "-"  # not run to 1000 episodes
    assert "| reacher-easy |" in text and text.count("\n") == 4
    assert "| 20 | 832 |" in next(line for line in text.splitlines() if "reacher-easy" in line)
