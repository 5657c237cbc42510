"""A registered environment for the tests: a point on a line that the agent pushes to 0.

Importing this module registers `toy-line` (as `--env-module toy_env` does for a run). The
episode terminates when the point leaves [-1, 1], so episodes have different lengths.
"""

import numpy as np

from planet_jax.io import envs


class Line:
    action_size = 1
    obs_shape = (2,)
    obs_dtype = np.float32

    def __init__(self, seed: int, obs: str):
        if obs != "state":
            raise ValueError("toy-line has state observations only")
        self.rng = np.random.default_rng(seed)
        self.x = self.v = 0.0

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x, self.v = float(self.rng.uniform(-0.5, 0.5)), float(self.rng.uniform(-0.1, 0.1))
        return np.array([self.x, self.v], np.float32)

    def step(self, action):
        self.v = 0.9 * self.v + 0.05 * float(action[0])
        self.x += self.v
        return np.array([self.x, self.v], np.float32), 1.0 - abs(self.x), abs(self.x) > 1.0

    def close(self):
        pass


envs.register("toy-line", lambda seed, obs: Line(seed, obs), action_repeat=1)
