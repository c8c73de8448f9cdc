"""Forward and forward+backward time of the resampling operations at the cifar preset's sizes.

  python benchmarks/resample_ops.py                  # batch 32, 512 channels, 32x32
  python benchmarks/resample_ops.py --batch 8 --channels 256 --resolution 16

Compares, on the current backend, the native XLA forms (a depthwise convolution for the FIR
filter, lhs dilation for the transposed convolution, a strided convolution) with the forms
dgan_jax uses on the CPU (shifted-slice FIR, polyphase stride-1 convolutions with explicit
derivatives, dgan_jax/models/conv.py), and a plain 3x3 stride-1 convolution as the yardstick.
Columns: forward, forward+backward, and R1's double backward.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from dgan_jax.models import conv  # noqa: E402
from dgan_jax.models import upfirdn2d as fir  # noqa: E402

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def timed(fn, args, iters):
  """Mean seconds per call of fn, of its gradient, and of an R1-style double gradient
  (d/d args of |d sum(tanh(fn)) / d first arg|^2), each after a warm-up call."""
  argnums = tuple(range(len(args)))
  grad = jax.grad(lambda *a: jnp.sum(jnp.square(fn(*a))), argnums=argnums)

  def r1(*a):
    input_grad = jax.grad(lambda x: jnp.sum(jnp.tanh(fn(x, *a[1:]))))(a[0])
    return jnp.sum(jnp.square(input_grad))

  out = []
  for f in (jax.jit(fn), jax.jit(grad), jax.jit(jax.grad(r1, argnums=argnums))):
    jax.block_until_ready(f(*args))
    start = time.perf_counter()
    for _ in range(iters):
      jax.block_until_ready(f(*args))
    out.append((time.perf_counter() - start) / iters)
  return out


def depthwise_fir(x, f):
  """The FIR filter as a depthwise convolution (the straightforward XLA form)."""
  kernel = jnp.tile(jnp.asarray(f[::-1, ::-1])[:, :, None, None], (1, 1, 1, x.shape[-1]))
  return lax.conv_general_dilated(x, kernel, (1, 1), 'VALID', dimension_numbers=_NHWC,
                                  feature_group_count=x.shape[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--channels', type=int, default=512)
  parser.add_argument('--resolution', type=int, default=32)
  parser.add_argument('--iters', type=int, default=3)
  args = parser.parse_args()
  n, c, r = args.batch, args.channels, args.resolution
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, (n, r, r, c))
  x_low = jax.random.normal(key, (n, r // 2, r // 2, c))
  w = jax.random.normal(key, (3, 3, c, c)) * 0.01
  f = fir.setup_filter()
  pads = ((2, 2), (2, 2))
  same = ((1, 1), (1, 1))
  cases = [
      ('3x3 conv, stride 1: native', lambda x, w: conv._native_conv(x, w, 1, same), (x, w)),
      ('3x3 conv, stride 1: valid_conv', lambda x, w: conv.valid_conv(conv._pad_hw(x, *same), w), (x, w)),
      ('FIR 4x4: depthwise conv', lambda x: depthwise_fir(x, f), (x,)),
      ('FIR 4x4: shifted slices', lambda x: fir.upfirdn2d(x, f), (x,)),
      ('transposed 3x3 s2: lhs dilation', lambda x, w: conv._native_conv(x, w, 1, pads, (2, 2)), (x_low, w)),
      ('transposed 3x3 s2: polyphase', lambda x, w: conv.transposed_conv(x, w, pads, 2), (x_low, w)),
      ('3x3 conv, stride 2: native', lambda x, w: conv._native_conv(x, w, 2), (x, w)),
      ('3x3 conv, stride 2: polyphase', lambda x, w: conv.strided_conv(x, w, 2), (x, w)),
  ]
  print(f'{jax.default_backend()}, batch {n}, {c} channels, {r}x{r} (transposed: from {r // 2}x{r // 2})')
  for name, fn, fn_args in cases:
    fwd_s, grad_s, r1_s = timed(fn, fn_args, args.iters)
    print(f'{name:34s} forward {fwd_s * 1e3:8.1f} ms | +backward {grad_s * 1e3:8.1f} ms | '
          f'R1 double backward {r1_s * 1e3:8.1f} ms', flush=True)


if __name__ == '__main__':
  main()
