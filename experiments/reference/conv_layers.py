"""Milliseconds per layer of the paper's encoder and decoder, for every form in `planet_jax.ops.convs`.

For each layer: forward alone / forward + backward (gradients of x and the kernel), at N
frames (800 = one B=16, L=50 update). `matmul` is what `conv_impl=matmul` picks; the `*_xla`
forms are what a naive Flax model runs (`flax.linen.Conv` / `ConvTranspose`). Use it to
re-check the per-layer choices of `convs.conv` / `convs.deconv` on a new CPU.

  python experiments/reference/conv_layers.py --frames 800
  python experiments/reference/conv_layers.py --frames 256 --depth 16   # the small preset's update
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp

from planet_jax.bench import timeit
from planet_jax.ops import convs


def encoder(d: int) -> list[tuple[int, int, int]]:
    """(size, C_in, C_out) of the encoder's k=4 layers at cnn depth d (the paper's: 32)."""
    return [(64, 3, d), (31, d, 2 * d), (14, 2 * d, 4 * d), (6, 4 * d, 8 * d)]


def decoder(d: int) -> list[tuple[int, int, int, int]]:
    """(size, C_in, C_out, k) of the decoder's layers at cnn depth d."""
    return [(1, 32 * d, 4 * d, 5), (5, 4 * d, 2 * d, 5), (13, 2 * d, d, 6), (30, d, 3, 6)]


CONV_FORMS = ["matmul", "conv_xla", "conv_patches", "conv_s2d", "conv_s2d_patches"]
DECONV_FORMS = ["matmul", "deconv_xla", "deconv_overlap", "deconv_subpixel", "deconv_subpixel_xla"]


def median_ms(f, *args, repeats: int) -> float:
    f = jax.jit(f)
    return 1e3 * statistics.median(timeit(lambda: jax.block_until_ready(f(*args)), warmup=1, repeats=repeats))


def row(op, x, kernel, forms, repeats):
    cells = []
    for impl in forms:
        fwd = lambda x, k, impl=impl: op(x, k, 2, impl)
        both = lambda x, k, impl=impl: jax.grad(lambda x, k: jnp.sum(op(x, k, 2, impl) ** 2), (0, 1))(x, k)
        cells.append(
            f"{impl} {median_ms(fwd, x, kernel, repeats=repeats):.0f}/{median_ms(both, x, kernel, repeats=repeats):.0f}"
        )
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--depth", type=int, default=32, help="cnn depth (the small preset's: 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forms", nargs="+", default=None, help="only these forms (default: all)")
    parser.add_argument("--layers", nargs="+", type=int, default=None, help="only these rows, 0-7 (encoder 0-3)")
    args = parser.parse_args()
    keep = lambda forms: [f for f in forms if args.forms is None or f in args.forms]
    rows = lambda i: args.layers is None or i in args.layers
    n, key = args.frames, jax.random.key(0)
    print(f"{jax.devices()[0].device_kind}, {n} frames, depth {args.depth}, ms forward / forward + backward")
    for i, (size, c, f) in enumerate(encoder(args.depth)):
        if not rows(i):
            continue
        x, k = jax.random.normal(key, (n, size, size, c)), 0.1 * jax.random.normal(key, (4, 4, c, f))
        print(f"encoder {size}x{size}x{c}->{f}: {row(convs.conv, x, k, keep(CONV_FORMS), args.repeats)}", flush=True)
    for i, (size, c, f, ks) in enumerate(decoder(args.depth)):
        if not rows(4 + i):
            continue
        x, k = jax.random.normal(key, (n, size, size, c)), 0.1 * jax.random.normal(key, (ks, ks, c, f))
        print(
            f"decoder {size}x{size}x{c}->{f} k{ks}: {row(convs.deconv, x, k, keep(DECONV_FORMS), args.repeats)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
