import os

import numpy as np
import pytest

from planet_jax.io.replay import Replay, ReplayError


def make_episode(index, length, obs_shape=(4, 4, 3)):
    """An episode whose every entry records (episode index, time step)."""
    t = np.arange(length + 1)
    obs = np.zeros((length + 1, *obs_shape), np.uint8)
    obs[..., 0] = index
    obs[..., 1] = t.reshape(-1, *([1] * len(obs_shape[:-1])))
    action = np.stack([np.full(length + 1, index), t], -1).astype(np.float32)
    reward = (1000 * index + t).astype(np.float32)
    return {"obs": obs, "action": action, "reward": reward}


def test_chunks_stay_inside_episodes_and_cover_every_start():
    replay = Replay()
    lengths = [10, 3, 25, 7]  # the 3-step episode (4 entries) cannot hold a chunk of 5
    for i, n in enumerate(lengths):
        replay.add(make_episode(i, n))
    L = 5
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        batch = replay.sample(rng, 16, L)
        assert batch["obs"].shape == (16, L, 4, 4, 3) and batch["action"].shape == (16, L, 2)
        ep = batch["action"][..., 0]
        t = batch["action"][..., 1]
        assert (ep == ep[:, :1]).all(), "a chunk crossed an episode boundary"
        assert (np.diff(t, axis=1) == 1).all()
        np.testing.assert_array_equal(batch["reward"], 1000 * ep + t)
        np.testing.assert_array_equal(batch["obs"][:, :, 0, 0, 1], t)
        seen |= {(int(e), int(s)) for e, s in zip(ep[:, 0], t[:, 0])}
    valid = {(i, s) for i, n in enumerate(lengths) for s in range(n + 1 - L + 1)}
    assert seen == valid


def test_starts_are_uniform_over_valid_positions():
    replay = Replay()
    replay.add(make_episode(0, 4))  # 4 valid starts for L=2... (5 entries -> 4 starts)
    replay.add(make_episode(1, 12))  # 12 starts
    batch = replay.sample(np.random.default_rng(1), 16000, 2)
    frac = (batch["action"][:, 0, 0] == 0).mean()
    assert abs(frac - 4 / 16) < 0.015


def test_sampling_is_deterministic_for_a_seed():
    replay = Replay()
    for i in range(3):
        replay.add(make_episode(i, 20))
    a = replay.sample(np.random.default_rng(7), 8, 6)
    b = replay.sample(np.random.default_rng(7), 8, 6)
    c = replay.sample(np.random.default_rng(8), 8, 6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["reward"], c["reward"])
    # Written into views of a larger batch: the same chunks, and only where asked.
    big = {k: np.zeros((2, *v.shape), v.dtype) for k, v in a.items()}
    replay.sample(np.random.default_rng(7), 8, 6, out={k: v[1] for k, v in big.items()})
    for k in a:
        np.testing.assert_array_equal(big[k][1], a[k])
        assert not big[k][0].any()
    # The shapes and dtypes a batch with leading axes gets.
    empty = replay.empty_batch((2, 3), 8, 6)
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {k: ((2, 3, *v.shape), v.dtype) for k, v in a.items()}


def test_save_load_round_trip_is_exact_and_incremental(tmp_path):
    replay = Replay(tmp_path)
    episodes = [make_episode(i, 5 + i, obs_shape=(64, 64, 3)) for i in range(3)]
    replay.add(episodes[0])
    assert sorted(os.listdir(tmp_path / "episode-000000")) == ["action.npy", "crc32.json", "obs.npy", "reward.npy"]
    mtime = os.stat(tmp_path / "episode-000000" / "obs.npy").st_mtime_ns
    for ep in episodes[1:]:
        replay.add(ep)
    # Adding episodes never rewrites earlier files.
    assert os.stat(tmp_path / "episode-000000" / "obs.npy").st_mtime_ns == mtime
    loaded = Replay.load(tmp_path)
    assert len(loaded) == 3 and loaded.num_steps == 5 + 6 + 7
    for ep, back, written in zip(episodes, loaded.episodes, replay.episodes):
        for k in ep:
            assert back[k].dtype == ep[k].dtype
            np.testing.assert_array_equal(back[k], ep[k])
            # Both the writer and the reader hold the episode as a read-only memory map.
            assert isinstance(back[k], np.memmap) and isinstance(written[k], np.memmap)
    # A resumed store appends after what it loaded.
    loaded.add(make_episode(3, 4))
    assert sorted(os.listdir(tmp_path))[-1] == "episode-000003"


def test_the_disk_store_draws_the_same_chunks_as_memory(tmp_path):
    """The same seed gives the same batch from the memory-mapped store as from episodes
    held in memory (the sampler of the in-RAM replay, unchanged)."""
    memory, disk = Replay(), Replay(tmp_path)
    for i in range(6):
        ep = make_episode(i, 10 + 3 * i, obs_shape=(8, 8, 3))
        memory.add(ep)
        disk.add(ep)
    for store in (disk, Replay.load(tmp_path)):
        a = memory.sample(np.random.default_rng(5), 32, 7)
        b = store.sample(np.random.default_rng(5), 32, 7)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_episodes_of_older_runs_still_load(tmp_path):
    """Runs before the memory-mapped layout wrote one .npz per episode: they load, and new
    episodes are appended in the new layout."""
    episodes = [make_episode(i, 6) for i in range(2)]
    for i, ep in enumerate(episodes):
        np.savez(tmp_path / f"episode-{i:06d}.npz", **ep)
    loaded = Replay.load(tmp_path)
    assert len(loaded) == 2
    np.testing.assert_array_equal(loaded.episodes[1]["obs"], episodes[1]["obs"])
    loaded.add(make_episode(2, 6))
    again = Replay.load(tmp_path)
    assert len(again) == 3 and sorted(os.listdir(tmp_path)) == ["episode-000000.npz", "episode-000001.npz",
                                                                  "episode-000002"]  # fmt: skip


def test_memory_does_not_grow_with_the_episodes_stored(tmp_path):
    """100 pixel episodes of 100 steps (123 MB on disk) held by a loaded store cost the
    process almost nothing but the page cache: the arrays are maps of the files."""
    replay = Replay(tmp_path)
    for i in range(100):
        replay.add(make_episode(i, 100, obs_shape=(64, 64, 3)))
    del replay
    loaded = Replay.load(tmp_path)
    assert all(isinstance(ep["obs"], np.memmap) for ep in loaded.episodes)
    in_memory = sum(ep[k].nbytes for ep in loaded.episodes for k in ep if not isinstance(ep[k], np.memmap))
    assert in_memory == 0
    batch = loaded.sample(np.random.default_rng(0), 50, 50)
    assert batch["obs"].shape == (50, 50, 64, 64, 3) and not isinstance(batch["obs"], np.memmap)


def test_load_limit_and_truncate(tmp_path):
    replay = Replay(tmp_path)
    for i in range(4):
        replay.add(make_episode(i, 5))
    assert len(Replay.load(tmp_path, limit=2)) == 2
    assert len(os.listdir(tmp_path)) == 4
    loaded = Replay.load(tmp_path)
    loaded.truncate(2)
    assert len(loaded) == 2
    assert sorted(os.listdir(tmp_path)) == ["episode-000000", "episode-000001"]
    loaded.add(make_episode(9, 5))
    assert sorted(os.listdir(tmp_path))[-1] == "episode-000002"


@pytest.mark.parametrize("how", ["garble", "truncate", "delete"])
def test_damaged_episode_is_reported_and_intact_ones_kept(tmp_path, caplog, how):
    replay = Replay(tmp_path)
    for i in range(4):
        replay.add(make_episode(i, 30, obs_shape=(16, 16, 3)))
    path = tmp_path / "episode-000002" / "obs.npy"
    data = bytearray(path.read_bytes())
    if how == "garble":
        data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # a silent change of the frames
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[:1000]))
    else:
        path.unlink()
    loaded = Replay.load(tmp_path)
    assert len(loaded) == 2
    assert "episode-000002 is damaged" in caplog.text
    assert (tmp_path / "episode-000002.damaged").is_dir()
    # The next episode takes its index; a second damage there is set aside beside the first.
    loaded.add(make_episode(7, 30, obs_shape=(16, 16, 3)))
    (tmp_path / "episode-000002" / "crc32.json").unlink()
    assert len(Replay.load(tmp_path)) == 2 and (tmp_path / "episode-000002.damaged-1").is_dir()


def test_bad_episodes_and_short_store_raise():
    replay = Replay()
    with pytest.raises(ReplayError, match="the replay is empty"):
        replay.empty_batch((2,), 4, 3)
    with pytest.raises(ReplayError, match="equal time axes"):
        replay.add({"obs": np.zeros((3, 2)), "action": np.zeros((2, 1)), "reward": np.zeros(3)})
    replay.add(make_episode(0, 3))
    with pytest.raises(ReplayError, match="no stored episode holds a chunk of length 10"):
        replay.sample(np.random.default_rng(0), 2, 10)


def _tree(directory):
    """Every file under `directory`: relative path -> (bytes, modification time)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = (f.read(), os.stat(path).st_mtime_ns)
    return out


def test_a_readonly_store_is_never_changed(tmp_path):
    """Another run's replay, opened for offline training: a damaged episode ends the load
    but stays where it is, and adding or truncating is refused."""
    replay = Replay(tmp_path)
    for i in range(4):
        replay.add(make_episode(i, 12))
    (tmp_path / "episode-000002" / "crc32.json").write_text('{"obs": 1, "action": 2, "reward": 3}')
    before = _tree(tmp_path)
    loaded = Replay.load(tmp_path, readonly=True)
    assert len(loaded) == 2
    with pytest.raises(ReplayError, match="read-only"):
        loaded.add(make_episode(9, 12))
    with pytest.raises(ReplayError, match="read-only"):
        loaded.truncate(1)
    loaded.sample(np.random.default_rng(0), 8, 5)
    assert _tree(tmp_path) == before
    assert not Replay(tmp_path / "absent", readonly=True).episodes and not (tmp_path / "absent").exists()


def test_a_union_samples_as_one_store_holding_both():
    """`Replay.union(a, b)` draws what one replay holding a's then b's episodes draws."""
    a, b, both = Replay(), Replay(), Replay()
    for i in range(5):
        ep = make_episode(i, 9 + 2 * i)
        (a if i < 3 else b).add(ep)
        both.add(ep)
    union = Replay.union(a, b)
    assert union.episodes[3]["obs"] is b.episodes[0]["obs"]  # shared, not copied
    x, y = union.sample(np.random.default_rng(2), 16, 6), both.sample(np.random.default_rng(2), 16, 6)
    for k in x:
        np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.slow
def test_resident_memory_after_loading_200_pixel_episodes_stays_far_below_their_size(tmp_path):
    """A fresh process loads (and CRC-checks) 200 stored pixel episodes of 100 steps (248 MB)
    and samples from them: its own (anonymous) resident memory grows by a small fraction of
    that; the frames stay in the page cache, which the kernel may drop."""
    import subprocess
    import sys

    replay = Replay(tmp_path)
    episode = make_episode(0, 100, obs_shape=(64, 64, 3))
    for _ in range(200):
        replay.add(episode)
    stored = 200 * sum(v.nbytes for v in episode.values())
    del replay
    script = f"""
import numpy as np
from planet_jax.io.replay import Replay

def anon():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("RssAnon:"))

before = anon()
replay = Replay.load({str(tmp_path)!r})
grown = anon() - before
out = replay.empty_batch((), 50, 50)  # one batch buffer (30 MB), as the trainer keeps
for seed in range(20):
    replay.sample(np.random.default_rng(seed), 50, 50, out=out)
print(len(replay), grown, anon() - before - out["obs"].nbytes)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    count, after_load, after_sampling = (int(x) for x in done.stdout.split())
    assert count == 200
    # 5% of 248 MB: room for Python's objects and the maps' page tables, not for the frames.
    assert after_load < 0.05 * stored, (after_load, stored)
    assert after_sampling < 0.05 * stored, (after_sampling, stored)
