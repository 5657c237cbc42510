"""planet_jax: PlaNet (Hafner et al., ICML 2019) as pure JAX functions.

Modules, one concern each: `config` (settings and presets), `tasks` (which environments:
Control Suite, Gymnasium, registered), `envs` (the environments, from pixels or states), `preprocess` (5-bit frames), `replay` (episode store), `networks` (Flax modules),
`rssm` (pure RSSM functions), `losses` (ELBO, overshooting), `state` and `update`
(training state and the jitted update), `planner` (CEM).
"""

__version__ = "0.1.0"
