import importlib.util

import imageio.v3 as iio
import numpy as np
import pytest

from planet_jax.io import logger


def _frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)


def test_video_is_an_mp4_with_every_frame_upscaled(tmp_path):
    path = logger.write_video(str(tmp_path / "v.mp4"), _frames(), scale=2)
    assert path.endswith("v.mp4")
    video = iio.imread(path)
    assert video.shape == (7, 32, 32, 3)


def test_without_imageio_ffmpeg_the_frames_are_kept_losslessly(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a)
    )
    frames = _frames()
    with pytest.warns(RuntimeWarning, match="imageio-ffmpeg is not installed"):
        path = logger.write_video(str(tmp_path / "v.mp4"), frames, fps=10)
    assert path == str(tmp_path / "v.npz") and not (tmp_path / "v.mp4").exists()
    saved = np.load(path)
    np.testing.assert_array_equal(saved["frames"], frames)
    assert int(saved["fps"]) == 10
