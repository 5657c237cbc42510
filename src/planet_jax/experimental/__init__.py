"""Experimental code: correct and tested, not (yet) faster than the main path, and used by
none of `train`, `evaluate` or `bench`. See README.md in this directory.

  rollout_kernel  the planner's candidate rollouts as one fused Pallas (Triton) kernel
"""
