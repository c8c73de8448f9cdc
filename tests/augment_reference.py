"""Runs the reference's augmentation (torch, CPU) on NHWC numpy images and records its random draws.

Only the runners need torch (imported lazily: the case tables serve the default suite too).
The draws are the outputs of every `torch.rand` / `torch.randn` / `torch.randint` call made during
the forward, in call order; `ada.raw_from_sequence` and `diffaug.draws_from_sequence` map them onto
dgan_jax's draws so both sides transform the same images with the same random values. On the CPU
the reference's upfirdn2d, conv2d_gradfix and grid_sample_gradfix fall back to plain torch ops
(`grid_sample_gradfix.enabled` stays at its default False; the forward is the same either way).
"""
import contextlib
from unittest import mock

import numpy as np

_SAMPLERS = ('rand', 'randn', 'randint')


@contextlib.contextmanager
def recorded_draws():
  """Yields a list that collects (as numpy) every random tensor torch draws inside the context."""
  import torch  # pylint: disable=import-outside-toplevel
  draws = []
  real = {name: getattr(torch, name) for name in _SAMPLERS}

  def recorder(name):
    def sample(*args, **kwargs):
      out = real[name](*args, **kwargs)
      draws.append(out.detach().cpu().numpy().copy())
      return out
    return sample

  with mock.patch.multiple(torch, **{name: recorder(name) for name in _SAMPLERS}):
    yield draws


def _nchw(images):
  import torch  # pylint: disable=import-outside-toplevel
  return torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2)))


@contextlib.contextmanager
def _pinned_normal(value):
  """Makes every torch.randn return `value` (None: leaves it alone), to design a transform."""
  import torch  # pylint: disable=import-outside-toplevel
  if value is None:
    yield
    return
  with mock.patch.object(torch, 'randn', lambda size, **kwargs: torch.full(size, float(value))):
    yield


def run_ada(adaaug, images, p: float, seed: int, pin_normal=None, **pipe_kwargs):
  """(output NHWC, draws) of the reference `ADA(p, **pipe_kwargs)` on NHWC `images`.

  `pin_normal`: a value every normal draw takes instead (uniform draws stay random).
  """
  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  pipe = adaaug.ADA(p=p, **pipe_kwargs)
  with _pinned_normal(pin_normal), recorded_draws() as draws, torch.no_grad():
    out = pipe(_nchw(images))
  return out.numpy().transpose(0, 2, 3, 1), draws


def run_diffaug(diffaug, images, seed: int, policy: str = 'color,translation,cutout'):
  """(output NHWC, draws) of the reference `DiffAugment(policy)` on NHWC `images`."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  module = diffaug.DiffAugment(policy=policy)
  with recorded_draws() as draws, torch.no_grad():
    out = module(_nchw(images))
  return out.numpy().transpose(0, 2, 3, 1), draws


def smooth_images(shape, seed: int) -> np.ndarray:
  """float32 NHWC test images in [-1, 1]: a bilinearly upsampled 5x5 random field plus fine noise."""
  n, height, width, channels = shape
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(-1, 1, (n, 5, 5, channels))
  ys, xs = np.linspace(0, 4, height), np.linspace(0, 4, width)
  rows = np.stack([[np.interp(ys, np.arange(5), coarse[i, :, j, c]) for j in range(5)]
                   for i in range(n) for c in range(channels)])          # [n*c, 5 (x), H]
  full = np.stack([[np.interp(xs, np.arange(5), r[:, y]) for y in range(height)] for r in rows])
  full = full.reshape(n, channels, height, width).transpose(0, 2, 3, 1)
  return np.clip(full + 0.1 * rng.standard_normal(full.shape), -1, 1).astype(np.float32)


# Parity cases: (name, reference ADA kwargs, p, image shape, pinned normal draw or None). Every op
# alone at p = 1, the named specs bgc (p = 1 and a partial p) and bgcfnc, strong geometric
# transforms (the padding margin clamps at size - 1), a zoom-out by 0.39 at 48x64 where the batch
# margin's zero frame of the resampling matters before and after the upsampling (designed by pinning
# the normal draws), and a one-channel batch. Non-square images catch x / y mix-ups.
_OPS = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness', 'contrast',
        'lumaflip', 'hue', 'saturation', 'imgfilter', 'noise', 'cutout')
_BGC = _OPS[:12]
RGB_SHAPE = (4, 24, 28, 3)
GRAY_SHAPE = (3, 24, 24, 1)
ADA_CASES = (
    [(op, {op: 1}, 1.0, RGB_SHAPE, None) for op in _OPS]
    + [('bgc', {op: 1 for op in _BGC}, 1.0, RGB_SHAPE, None),
       ('bgc_p0.4', {op: 1 for op in _BGC}, 0.4, RGB_SHAPE, None),
       ('bgcfnc_p0.7', {op: 1 for op in _OPS}, 0.7, RGB_SHAPE, None),
       ('strong_geom', dict(scale=1, rotate=1, scale_std=1.0), 1.0, RGB_SHAPE, None),
       ('zoom_out_edge', dict(scale=1, scale_std=1.0), 1.0, (1, 48, 64, 3), float(np.log2(0.39))),
       ('gray_bgcf', {op: 1 for op in _OPS[:13]}, 1.0, GRAY_SHAPE, None)])

# DiffAugment cases: (name, policy, image shape).
DIFFAUG_CASES = (('default', 'color,translation,cutout', (8, 13, 21, 3)),
                 ('reordered', 'cutout,color,translation', (8, 16, 16, 3)),
                 ('gray', 'color,translation,cutout', (4, 10, 12, 1)))
