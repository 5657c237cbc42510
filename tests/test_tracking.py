"""The Weights & Biases mirror (`--wandb`), in W&B's offline mode: no network, no account.

The offline run files (`LOGDIR/wandb/offline-run-*/run-ID.wandb`) are read back with a
reader of their documented record log (a 7-byte `:W&B` header, then 32 KiB blocks of
records framed as in LevelDB's log: CRC-32, length, type FULL/FIRST/MIDDLE/LAST), each
record one `wandb_internal_pb2.Record`."""

import glob
import hashlib
import json
import os
import struct
import time
import zlib

import pytest

from helpers import tiny_run
from planet_jax.io.logger import MetricsLog, scalar_tags
from planet_jax.train import main as train_main

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

TINY = tiny_run(task="cartpole-swingup", obs=None, episodes=3, test_every=3, checkpoint_every=2, wandb=True)


def _records(path):
    """Every Record in a .wandb file, checking each fragment's CRC-32 (of type byte + data)."""
    data = open(path, "rb").read()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    pos, block, pending, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc
        pos += 7 + length
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def _finished_records(path, timeout=120.0):
    """The records of an offline run's log once W&B's writer has written its `exit` record.

    `run.finish()` can return before the W&B service has flushed the last records of an
    offline run to disk (seen on a loaded 2-core CI machine: the evaluate run's history
    row was missing), so wait for what the writer writes last, not for a time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(_records(path))
        except (AssertionError, struct.error):  # a fragment still being written
            if time.monotonic() > deadline:
                raise
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def _history(logdir):
    """(run id, [history rows as dicts]) of each offline W&B run under the run directory, oldest first."""
    runs = []
    for path in sorted(glob.glob(os.path.join(logdir, "wandb", "offline-run-*", "run-*.wandb"))):
        rows, run_id = [], None
        for r in _finished_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run_id = r.run.run_id
            elif kind == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
        runs.append((run_id, rows))
    return runs


@pytest.mark.slow
def test_train_and_evaluate_mirror_to_one_offline_wandb_run(tmp_path, monkeypatch):
    from planet_jax.evaluate import main as evaluate_main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logdir = str(tmp_path / "run")
    assert train_main([*TINY, "--episodes", "2", "--logdir", logdir]) == 0
    assert train_main([*TINY, "--logdir", logdir]) == 0  # resumed: the same W&B run
    assert evaluate_main(["--logdir", logdir, "--episodes", "1", "--openloop-steps", "5", "--wandb"]) == 0
    saved = json.load(open(os.path.join(logdir, "wandb.json")))
    runs = _history(logdir)
    assert len(runs) == 3 and {run_id for run_id, _ in runs} == {saved["id"]}
    rows = [row for _, r in runs for row in r]
    # Every scalar of metrics.jsonl, under its TensorBoard tag, at its episode.
    logged = {(row["episode"], k): v for row in rows for k, v in row.items() if not k.startswith("_")}
    records = MetricsLog.read(logdir)
    assert {r["kind"] for r in records} == {"train_episode", "update", "test"}
    for record in records:
        for tag, value in scalar_tags(record).items():
            assert logged[(record["episode"], tag)] == pytest.approx(value, rel=1e-6), tag
    assert ("test/seed0/return" in {k for _, k in logged}) and ("update/seed0/kl" in {k for _, k in logged})
    # evaluate: returns and both videos, at the checkpoint's episode (3).
    evaluated = json.load(open(os.path.join(logdir, "eval", "step-3", "returns.json")))
    assert logged[(3, "eval/seed-0/mean")] == pytest.approx(evaluated["mean"])
    # A video is logged as a nested value (KEY/_type, KEY/path, KEY/sha256), its file under files/.
    videos = {k[: -len("/_type")]: row for row in rows for k, v in row.items() if k.endswith("/_type")}
    assert set(videos) == {"eval/seed-0/episode-0", "eval/seed-0/openloop"}
    for key, row in videos.items():
        assert row[f"{key}/_type"] == "video-file"
        (media,) = glob.glob(os.path.join(logdir, "wandb", "offline-run-*", "files", row[f"{key}/path"]))
        assert hashlib.sha256(open(media, "rb").read()).hexdigest() == row[f"{key}/sha256"]
        assert os.path.getsize(media) > 1000


def test_wandb_without_the_package_is_one_sentence(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SystemExit) as exit_:
        train_main([*TINY, "--logdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "pip install 'planet-jax[wandb]'" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
