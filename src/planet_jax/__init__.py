"""planet_jax: PlaNet (Hafner et al., ICML 2019) as pure JAX functions.

Subpackages in reading order (each module one concern):

  config       the settings: schema, presets, validation (`planet_jax.config`);
               `sweeps` (the agents of a run as rows), `cli` (the commands' flags)
  model/       the world model: `networks` (Flax modules), `rssm` (pure RSSM steps and
               rollouts), `losses` (the ELBO, latent overshooting), `preprocess` (5-bit
               frames), `state` and `update` (the training state and one jitted update)
  agent/       acting with the model: `planner` (CEM), `programs` (the compiled programs
               of N agents at once), `acting` (episodes under a policy), `trained`
               (`planet_jax.Agent`: a trained agent from Python)
  ops/         exact fast forms and platform choices: `convs`, `rng`, `compiler`,
               `backends` (the one platform switch), `distributed`, `hostmem`
  io/          the world outside: `tasks` and `envs` (environments), `replay` (episode
               store), `checkpoint`, `logger`, `tracking`, `rundir` (run directories)
  train, evaluate, bench   the three commands (`python -m planet_jax.train`, ...)
  experimental/            tested code that is not on the main path
"""

__version__ = "0.1.0"


def __getattr__(name):
    # `planet_jax.Agent` without importing JAX for `import planet_jax` alone.
    if name == "Agent":
        from planet_jax.agent.trained import Agent

        return Agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
