"""Exact fast forms of the model's operations, and the per-platform choices among them.

Nothing here changes what a program computes beyond float rounding; each form is tested
against the plain one.

  backends     the one platform switch: every `auto` setting resolved from the backend
  convs        convolutions as matrix products (the CPU forms), with their gradients
  rng          the Threefry hash unrolled: the numbers of `jax.random`, faster on a CPU
  compiler     XLA options per program, matmul precision, the compilation cache
  distributed  several processes and devices along the agent axis
  hostmem      malloc settings that keep XLA's host buffers (standard library only)
"""
