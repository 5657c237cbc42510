"""`evaluate.openloop_video`: posterior reconstructions for the context, then the prior alone."""

import numpy as np
import pytest

from helpers import tiny_config
from planet_jax.evaluate import CONTEXT, openloop_video
from planet_jax.model.networks import init_params
from planet_jax.ops import rng as prng


@pytest.fixture(scope="module")
def model():
    cfg = tiny_config(obs="pixels", task="cartpole-swingup")
    return cfg, init_params(prng.key(0), cfg)


def _episode(cfg, steps, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 256, (steps, *cfg.obs_shape), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (steps, cfg.action_size)).astype(np.float32)
    actions[0] = 0.0  # a_{-1}
    return obs, actions


def _predictions(video):
    return video[:, :, 64:128]


@pytest.mark.parametrize("steps, length, expected", [(50, 80, 55), (50, 26, 26), (50, 3, 3)])
def test_frame_count_is_context_plus_steps_within_the_episode(model, steps, length, expected):
    cfg, params = model
    obs, actions = _episode(cfg, length)
    video = openloop_video(cfg, params, obs, actions, prng.key(1), steps)
    assert video.shape == (expected, 64, 3 * 64, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video[:, :, :64], obs[:expected])  # the truth panel
    error = np.abs(obs[:expected].astype(int) - _predictions(video).astype(int))
    np.testing.assert_array_equal(video[:, :, 128:], error)


def test_context_frames_are_posterior_and_the_rest_prior_under_the_real_actions(model):
    """What each frame depends on tells the two phases apart, with no copy of the maths:
    a reconstruction of o_t depends on o_0..o_t; a prediction after the context depends on
    no frame past the context, but on every action up to its own step."""
    cfg, params = model
    obs, actions = _episode(cfg, 20)
    key = prng.key(1)
    base = _predictions(openloop_video(cfg, params, obs, actions, key, 15))

    def changed(obs=obs, actions=actions):
        other = _predictions(openloop_video(cfg, params, obs, actions, key, 15))
        return [not np.array_equal(a, b) for a, b in zip(base, other)]

    # Frames after the context: the prior alone, so no observation past o_4 reaches them.
    later = obs.copy()
    later[CONTEXT:] = 255 - later[CONTEXT:]
    assert not any(changed(obs=later))
    # A context frame reaches its own reconstruction and every frame after it (the filter).
    early = obs.copy()
    early[2] = 255 - early[2]
    assert changed(obs=early) == [False] * 2 + [True] * 18
    # The real actions drive the prediction: a_9 (actions[10]) changes frames 10 onwards.
    acted = actions.copy()
    acted[10] = -acted[10]
    assert changed(actions=acted) == [False] * 10 + [True] * 10
