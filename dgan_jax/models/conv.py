"""NHWC convolutions that stay on XLA:CPU's fast path, to every order of differentiation.

XLA:CPU runs a convolution fast only in its plain form (measured): stride 1, no dilation, no window
reversal. The convolutions a GAN step needs, and their derivatives, often are not plain:

- a transposed convolution is an lhs-dilated one, and so is the input gradient of a strided
  convolution: 32x32x512, batch 32, forward+backward 32 s instead of 1.1 s;
- R1 differentiates the input gradient again, and XLA's own transposes then produce
  window-reversed convolutions: 24.5 s instead of 1.3 s for one 3x3 layer.

So on the CPU strided and transposed convolutions are sums of stride-1 convolutions over polyphase
components, built from `valid_conv`: a stride-1 'valid' convolution whose derivatives are defined
(custom_vjp) as `valid_conv`, `_input_grad` and `_weight_grad` again, with explicit kernel flips.
Padded stride-1 ('same') convolutions are `valid_conv` of the padded input too, so that their
weight gradients are `_weight_grad`'s (per sub-batch under vmap, never a feature-grouped
convolution). The convolutions themselves run on XLA's Eigen kernels: dgan_jax/xla_cpu.py turns
off YNNPACK's, which ran these unpadded ('valid') convolutions up to 3x slower.
GPUs and TPUs keep the native forms throughout (`use_polyphase`).
(Figures: benchmarks/resample_ops.py, benchmarks/xla_cpu_flags.py, docs/models.md.)

Depthwise convolutions (one filter per channel: EfficientNet's, the separable discriminator
blocks) are worse: XLA:CPU runs grouped convolutions on a slow generic path, the forward 10-30x
and the input gradient of a strided one 20x slower than the same arithmetic written as k*k
shifted, per-channel-scaled slices of the input (`depthwise_conv2d`; 8x112x112x96, 3x3/2: input
gradient 2.1 s against 0.1 s), which is what the CPU gets; other backends keep the native form.
"""
import jax
import jax.numpy as jnp
from jax import lax

from dgan_jax import platform

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def use_polyphase() -> bool:
  """Whether to build convolutions from stride-1 pieces with explicit derivatives (XLA:CPU)."""
  return platform.target_backend() == 'cpu'


def _pad_hw(x, pads_h, pads_w):
  """Pad (negative = crop) the two spatial axes of an NHWC array with zeros."""
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, [(0, 0, 0), (pads_h[0], pads_h[1], 0), (pads_w[0], pads_w[1], 0),
                           (0, 0, 0)])


def _native_conv(x, w, stride=1, padding=((0, 0), (0, 0)), lhs_dilation=(1, 1)):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, lhs_dilation=lhs_dilation,
                                  dimension_numbers=_NHWC)


def _same_vma(*arrays):
  """Cast the arrays to vary over the union of the mesh axes any of them varies over.

  Inside `jax.shard_map`, a replicated weight meets a per-device batch: JAX's own convolution
  rule inserts this cast (whose transpose sums the weight gradient over devices); a custom_vjp
  must have it done on its arguments, since its gradient has the type of its argument.
  """
  axes = frozenset().union(*(_varying_axes(a) for a in arrays))
  return tuple(a if _varying_axes(a) == axes else
               lax.pcast(a, tuple(sorted(axes - _varying_axes(a))), to='varying') for a in arrays)


def _varying_axes(a) -> frozenset:
  """The mesh axes `a` varies over inside shard_map (empty outside); JAX spells it `.vma` in
  some versions and `.manual_axis_type.varying` in others."""
  aval = jax.typeof(a)
  if hasattr(aval, 'vma'):
    return frozenset(aval.vma)
  return frozenset(aval.manual_axis_type.varying)


def valid_conv(x, w):
  """y[n, h, w, o] = sum_{a, b, i} x[n, h + a, w + b, i] * w[a, b, i, o], with derivatives of
  every order built from the same three stride-1 convolutions."""
  return _valid_conv(*_same_vma(x, w))


@jax.custom_vjp
def _valid_conv(x, w):
  return _native_conv(x, w)


@jax.custom_vjp
def _input_grad(dy, w):
  """The transpose of valid_conv(., w): a full correlation of dy with the flipped kernel."""
  kh, kw = w.shape[0], w.shape[1]
  return _native_conv(_pad_hw(dy, (kh - 1, kh - 1), (kw - 1, kw - 1)),
                      jnp.swapaxes(w[::-1, ::-1], 2, 3))


@jax.custom_vjp
def _weight_grad(x, dy):
  """d valid_conv(x, w) / d w contracted with dy: [kh, kw, I, O], summed over batch and pixels."""
  return _weight_grad_conv(x, dy)


# Sub-batches a mapped weight gradient is unrolled over (more: a loop, lax.map).
_MAX_UNROLL = 16
# Per-tap products beat XLA's weight-gradient convolution only for wide kernels on small maps.
_TAPS_MIN_CHANNEL_PAIRS = 1 << 22      # in * out channels (2048 x 2048)
_TAPS_MAX_PIXELS = 255                 # dy's pixels per image
# Below this many multiply-adds per sub-batch a mapped weight gradient is a loop of per-tap
# products: unrolling costs compile time (tests, smoke runs) and saves nothing measurable.
_UNROLL_MIN_MACS = 1 << 26


@jax.custom_batching.custom_vmap
def _weight_grad_conv(x, dy):
  """`_weight_grad`'s work for one batch, accumulated in float32 at least: XLA's own
  weight-gradient convolution (dy as a window over x), or, for kernels with >= 2048 x 2048
  channels on maps under 16x16, the per-tap products of `_weight_grad_taps`. On the 2-core CPU
  with Eigen's convolutions (dgan_jax/xla_cpu.py), native against per tap: 32x32x512 -> 512, 3x3,
  batch 16: 0.49 against 0.78 s; 56x56x64 -> 64, 2x2: 0.014 against 0.069 s; 8x8x256 -> 512, 2x2,
  batch 8: 3.5 against 6.8 ms; but 8x8x2048 -> 2048, 3x3, batch 16: 0.72 against 0.64 s.

  Mapped (the step's sub-batches, vmap) each sub-batch's gradient is needed on its own: batching
  x and dy together would make one feature-grouped convolution, XLA:CPU's slow generic path, and
  a loop over them runs a convolution in its body up to 30x slower. So the mapped form is
  unrolled, one plain call per sub-batch; a loop of per-tap products when the work is small
  (< 2^26 multiply-adds per sub-batch: compile time matters more there) or beyond 16 sub-batches."""
  if (dy.shape[1] * dy.shape[2] <= _TAPS_MAX_PIXELS
      and x.shape[3] * dy.shape[3] >= _TAPS_MIN_CHANNEL_PAIRS):
    return _weight_grad_taps(x, dy)
  acc = jnp.promote_types(x.dtype, jnp.float32)
  kh, kw = x.shape[1] - dy.shape[1] + 1, x.shape[2] - dy.shape[2] + 1
  # The kernel varies over x's mesh axes: else JAX casts it to, and sums its cotangent over them.
  kernel = _same_vma(jnp.zeros((kh, kw, x.shape[3], dy.shape[3]), acc), x, dy)[0]
  transpose = jax.linear_transpose(lambda k: _native_conv(x.astype(acc), k), kernel)
  return transpose(dy.astype(acc))[0].astype(x.dtype)


def _weight_grad_taps(x, dy):
  """w[a, b] = x[:, a:, b:]^T dy over batch and pixels: one [I, N*H*W] x [N*H*W, O] product per
  kernel tap, accumulated in float32 at least."""
  acc = jnp.promote_types(x.dtype, jnp.float32)
  kh, kw = x.shape[1] - dy.shape[1] + 1, x.shape[2] - dy.shape[2] + 1
  h, w = dy.shape[1], dy.shape[2]
  rows = [jnp.stack([jnp.einsum('nhwi,nhwo->io', x[:, a:a + h, b:b + w], dy,
                                preferred_element_type=acc) for b in range(kw)])
          for a in range(kh)]
  return jnp.stack(rows).astype(x.dtype)


@_weight_grad_conv.def_vmap
def _weight_grad_conv_mapped(axis_size, in_batched, x, dy):
  x_batched, dy_batched = in_batched
  pick = lambda a, batched, i: a[i] if batched else a
  x0, dy0 = pick(x, x_batched, 0), pick(dy, dy_batched, 0)
  macs = dy0.size * (x0.shape[1] - dy0.shape[1] + 1) * (x0.shape[2] - dy0.shape[2] + 1) * x0.shape[3]
  if axis_size > _MAX_UNROLL or (axis_size > 1 and macs < _UNROLL_MIN_MACS):
    return jax.lax.map(lambda i: _weight_grad_taps(pick(x, x_batched, i), pick(dy, dy_batched, i)),
                       jnp.arange(axis_size)), True
  return jnp.stack([_weight_grad_conv(pick(x, x_batched, i), pick(dy, dy_batched, i))
                    for i in range(axis_size)]), True


def _valid_conv_fwd(x, w):
  return _valid_conv(x, w), (x, w)


def _valid_conv_bwd(res, dy):
  x, w = res
  return _input_grad(*_same_vma(dy, w)), _weight_grad(*_same_vma(x, dy))


def _input_grad_fwd(dy, w):
  return _input_grad(dy, w), (dy, w)


def _input_grad_bwd(res, g):
  dy, w = res
  return valid_conv(g, w), _weight_grad(*_same_vma(g, dy))


def _weight_grad_fwd(x, dy):
  return _weight_grad(x, dy), (x, dy)


def _weight_grad_bwd(res, g):
  x, dy = res
  return _input_grad(*_same_vma(dy, g)), valid_conv(x, g)


_valid_conv.defvjp(_valid_conv_fwd, _valid_conv_bwd)
_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)
_weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)


def _transposed_phases(n: int, k: int, p0: int, p1: int, s: int):
  """Output phases r (o = s*m + r) of a 1-D lhs-dilated correlation.

  For each phase: the first kernel tap it uses and how many (taps a, a + s, ...), and the input
  padding (before, after; negative crops) that makes it a stride-1 'valid' correlation with
  ceil(length / s) outputs. Also returns the full output length and that per-phase count.
  """
  length = (n - 1) * s + 1 + p0 + p1 - k + 1
  per_phase = -(-length // s)
  phases = []
  for r in range(s):
    a = (p0 - r) % s
    count = len(range(a, k, s))
    offset = (r + a - p0) // s          # input index of the first tap of output r
    phases.append((a, count, -offset, offset + per_phase + count - 1 - n))
  return length, per_phase, phases


def transposed_conv(x, w, padding, up: int):
  """`conv_general_dilated(x, w, 1, padding, lhs_dilation=(up, up))` as up*up stride-1
  convolutions, one per output phase, interleaved: the zero-stuffed taps are never computed."""
  (ph0, ph1), (pw0, pw1) = padding
  len_h, m_h, phases_h = _transposed_phases(x.shape[1], w.shape[0], ph0, ph1, up)
  len_w, m_w, phases_w = _transposed_phases(x.shape[2], w.shape[1], pw0, pw1, up)
  rows = []
  for a_h, c_h, lo_h, hi_h in phases_h:
    cols = []
    for a_w, c_w, lo_w, hi_w in phases_w:
      if c_h == 0 or c_w == 0:
        cols.append(jnp.zeros((x.shape[0], m_h, m_w, w.shape[3]), x.dtype))
      else:
        cols.append(valid_conv(_pad_hw(x, (lo_h, hi_h), (lo_w, hi_w)), w[a_h::up, a_w::up]))
    rows.append(jnp.stack(cols, axis=3))                  # [N, m_h, m_w, up, O]
  y = jnp.stack(rows, axis=2)                              # [N, m_h, up, m_w, up, O]
  y = y.reshape(x.shape[0], m_h * up, m_w * up, w.shape[3])
  return y[:, :len_h, :len_w]


def strided_conv(x, w, stride: int, conv=None):
  """A 'valid' correlation with `stride` as a sum of stride-1 convolutions (`conv`, default
  `valid_conv`) over the input's polyphase components (x[q::stride] with taps w[q::stride])."""
  conv = conv or valid_conv
  kh, kw = w.shape[0], w.shape[1]
  out_h = (x.shape[1] - kh) // stride + 1
  out_w = (x.shape[2] - kw) // stride + 1
  total = None
  for qh in range(min(stride, kh)):
    for qw in range(min(stride, kw)):
      sub = w[qh::stride, qw::stride]
      th, tw = sub.shape[0], sub.shape[1]
      part = lax.slice(x, (0, qh, qw, 0),
                       (x.shape[0], qh + (out_h + th - 2) * stride + 1,
                        qw + (out_w + tw - 2) * stride + 1, x.shape[3]),
                       (1, stride, stride, 1))
      part = conv(part, sub)
      total = part if total is None else total + part
  return total


def conv2d(x, w, stride: int = 1, padding=((0, 0), (0, 0)), lhs_dilation=(1, 1)):
  """NHWC x HWIO correlation with padding ((top, bottom), (left, right)), a stride or an lhs
  dilation (not both): `lax.conv_general_dilated` on GPU/TPU, fast-path pieces on the CPU."""
  lhs_dilation = tuple(lhs_dilation)
  if stride > 1 and lhs_dilation != (1, 1):
    raise ValueError('a convolution is either strided or lhs-dilated, not both.')
  if not use_polyphase():
    return _native_conv(x, w, stride, padding, lhs_dilation)
  if lhs_dilation != (1, 1):
    if lhs_dilation[0] != lhs_dilation[1]:
      raise ValueError(f'transposed convolution needs equal factors, got {lhs_dilation}.')
    return transposed_conv(x, w, padding, lhs_dilation[0])
  if stride == 1:
    return valid_conv(_pad_hw(x, *padding), w)
  return strided_conv(_pad_hw(x, *padding), w, stride)


def depthwise_conv2d(x, w, stride: int = 1, padding=((0, 0), (0, 0))):
  """NHWC depthwise correlation, w [kh, kw, 1, C] (HWIO with feature_group_count = C), with
  padding ((top, bottom), (left, right)) and a stride: `lax.conv_general_dilated` on GPU/TPU; on
  the CPU `valid_depthwise` pieces (polyphase components for a stride, as `strided_conv`)."""
  kh, kw, multiplier, channels = w.shape
  if multiplier != 1 or channels != x.shape[3]:
    raise ValueError(f'depthwise_conv2d needs a [kh, kw, 1, {x.shape[3]}] weight, got {w.shape}.')
  if not use_polyphase():
    return lax.conv_general_dilated(x, w.astype(x.dtype), (stride, stride), padding,
                                    dimension_numbers=_NHWC, feature_group_count=channels)
  x = _pad_hw(x, *padding)
  if stride == 1:
    return valid_depthwise(x, w)
  return strided_conv(x, w, stride, valid_depthwise)


def valid_depthwise(x, w):
  """y[n, h, w, c] = sum_{a, b} x[n, h + a, w + b, c] * w[a, b, 0, c]: the sum of the kh*kw
  shifted slices of x, each scaled per channel (accumulated in float32 at least). Its input
  gradient is `valid_depthwise` again (the padded cotangent, the flipped kernel), so every order
  of derivative stays on this form. Inputs and cotangents are materialised first
  (optimization_barrier): XLA would otherwise fuse their producers into each of the kh*kw slices,
  and a backward pass recomputed the forward's taps kh*kw times (a 56x56x144 block's input
  gradient: 345 ms instead of ~60)."""
  return _valid_depthwise(*_same_vma(x, w))


def _shift_sum(x, w):
  kh, kw = w.shape[0], w.shape[1]
  acc = jnp.promote_types(x.dtype, jnp.float32)
  xa, wa = lax.optimization_barrier(x).astype(acc), w.astype(acc)
  out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  total = None
  for a in range(kh):
    for b in range(kw):
      part = xa[:, a:a + out_h, b:b + out_w] * wa[a, b, 0]
      total = part if total is None else total + part
  return total.astype(x.dtype)


@jax.custom_vjp
def _valid_depthwise(x, w):
  return _shift_sum(x, w)


def _valid_depthwise_fwd(x, w):
  return _valid_depthwise(x, w), (x, w)


def _valid_depthwise_bwd(res, dy):
  x, w = res
  kh, kw = w.shape[0], w.shape[1]
  dy = lax.optimization_barrier(dy)
  dx = valid_depthwise(_pad_hw(dy, (kh - 1, kh - 1), (kw - 1, kw - 1)), w[::-1, ::-1])
  out_h, out_w = dy.shape[1], dy.shape[2]
  acc = jnp.promote_types(dy.dtype, jnp.float32)
  xa, dya = x.astype(acc), dy.astype(acc)
  taps = [[jnp.sum(xa[:, a:a + out_h, b:b + out_w] * dya, axis=(0, 1, 2)) for b in range(kw)]
          for a in range(kh)]
  dw = jnp.stack([jnp.stack(row) for row in taps])[:, :, None, :]
  return dx.astype(x.dtype), dw.astype(w.dtype)


_valid_depthwise.defvjp(_valid_depthwise_fwd, _valid_depthwise_bwd)
