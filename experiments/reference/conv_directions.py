"""Milliseconds per gradient direction of each convolution form, layer by layer.

For each layer of the encoder and decoder (sizes from `conv_layers.py`, at --depth): the
hand-written backward pass of `matmul` (both gradients at once), then for every other form
the VJP for the input alone (dx) and for the kernel alone (dW), as `convs.mixed` would
run them. Use it to look for a per-direction mix; then time the mix inside a real update,
because a form's speed alone can differ from its speed inside the compiled update
(experiments/results/cpu-xeon-narrow).

  python experiments/reference/conv_directions.py --frames 256 --depth 16
"""

from __future__ import annotations

import argparse
import statistics

import jax
from conv_layers import decoder, encoder

from planet_jax.bench import timeit
from planet_jax.ops import convs

CONV_FORMS = ["conv_xla", "conv_patches", "conv_s2d", "conv_s2d_patches"]
DECONV_FORMS = ["deconv_xla", "deconv_overlap", "deconv_subpixel", "deconv_subpixel_xla"]


def median_ms(f, *args, repeats: int) -> float:
    f = jax.jit(f)
    return 1e3 * statistics.median(timeit(lambda: jax.block_until_ready(f(*args)), warmup=1, repeats=repeats))


def row(op, x, kernel, forms, repeats) -> str:
    dy = jax.random.normal(jax.random.key(1), op(x, kernel, 2, "matmul").shape)
    both = median_ms(
        lambda x, k, dy: jax.vjp(lambda a, b: op(a, b, 2, "matmul"), x, k)[1](dy), x, kernel, dy, repeats=repeats
    )
    cells = [f"matmul dx+dW {both:.0f}"]
    for form in forms:
        dx = median_ms(
            lambda x, k, dy, form=form: jax.vjp(lambda a: op(a, k, 2, form), x)[1](dy)[0],
            x,
            kernel,
            dy,
            repeats=repeats,
        )
        dw = median_ms(
            lambda x, k, dy, form=form: jax.vjp(lambda b: op(x, b, 2, form), k)[1](dy)[0],
            x,
            kernel,
            dy,
            repeats=repeats,
        )
        cells.append(f"{form} dx {dx:.0f} dW {dw:.0f}")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--depth", type=int, default=32, help="cnn depth (the small preset's: 16)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, key = args.frames, jax.random.key(0)
    print(f"{jax.devices()[0].device_kind}, {n} frames, depth {args.depth}, ms per gradient direction")
    for size, c, f in encoder(args.depth):
        x, k = jax.random.normal(key, (n, size, size, c)), 0.1 * jax.random.normal(key, (4, 4, c, f))
        print(f"encoder {size}x{size}x{c}->{f}: {row(convs.conv, x, k, CONV_FORMS, args.repeats)}", flush=True)
    for size, c, f, ks in decoder(args.depth)[1:]:  # the 1x1 layer is a dense layer (deconv_overlap)
        x, k = jax.random.normal(key, (n, size, size, c)), 0.1 * jax.random.normal(key, (ks, ks, c, f))
        print(
            f"decoder {size}x{size}x{c}->{f} k{ks}: {row(convs.deconv, x, k, DECONV_FORMS, args.repeats)}", flush=True
        )


if __name__ == "__main__":
    main()
