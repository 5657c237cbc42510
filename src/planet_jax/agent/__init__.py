"""Acting with the world model: the planner, the compiled programs of N agents, episodes.

planner   CEM over action sequences, scored in imagination (the paper's algorithm 2)
programs  `compiled(cfg)` -> `Programs`: init, update and act over the agent axis
acting    `rollout` of one episode per environment under a policy (planner or random)
trained   `Agent`: a trained run's checkpoint, to act, observe and imagine from Python
"""


def __getattr__(name):
    # `planet_jax.agent.Agent` without loading orbax for `planet_jax.agent.planner` alone.
    if name in ("Agent", "load_run"):
        from planet_jax.agent import trained

        return getattr(trained, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
