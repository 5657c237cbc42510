"""planet_jax: PlaNet (Hafner et al., ICML 2019) as pure JAX functions.

Modules, one concern each: `config` (settings and presets), `tasks` (which environments:
Control Suite, Gymnasium, registered), `envs` (the environments, from pixels or states),
`preprocess` (5-bit frames), `replay` (episode store), `networks` (Flax modules), `rssm`
(pure RSSM functions), `losses` (ELBO, overshooting), `state` and `update` (training state
and the jitted update), `planner` (CEM), `agent` (`planet_jax.Agent`: a trained agent
from Python).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # `planet_jax.Agent` without importing JAX for `import planet_jax` alone.
    if name == "Agent":
        from planet_jax.agent import Agent

        return Agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
