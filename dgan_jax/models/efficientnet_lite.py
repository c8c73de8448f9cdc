"""EfficientNet-lite0 (timm's `tf_efficientnet_lite0`) as the frozen feature network of Projected GANs.

The network is timm's: a 3x3/2 stem (32 channels), then 7 stages of depthwise-separable (stage 0)
and inverted-residual blocks (expansion 6), ReLU6 everywhere, no squeeze-excitation, BatchNorm
with eps 1e-3 in inference mode (running statistics). As in every `tf_` model, strided
convolutions use TensorFlow's 'SAME' padding (timm's Conv2dSame: the odd pixel padded after);
stride-1 convolutions pad (k - 1) / 2 on both sides. Blocks add their input when stride is 1
and the channel count is unchanged.

The Projected-GAN discriminator reads four feature maps (reference `pg_modules/projector.py`,
`_make_efficientnet`): stage 0 = stem + blocks[0:2] (24 ch, 1/4 resolution), stage 1 =
blocks[2:3] (40 ch, 1/8), stage 2 = blocks[3:5] (112 ch, 1/16), stage 3 = blocks[5:9] (320 ch,
1/32). The classifier head (conv_head, bn2, classifier) is not built.

Variables are named like timm's state dict (`conv_stem/weight`, `bn1/running_mean`,
`blocks_1_0/conv_pw/weight`, ...), convolution weights HWIO, and live in one collection
(`collection`, 'params' by default; the projected discriminator keeps them in 'frozen').

Weights: timm's `tf_efficientnet_lite0-0aa007d2.pth` (FILE_NAMES, URLS), found like the metric
weights (`dgan_jax/metrics/weights.py`: $DGAN_JAX_METRICS_DIR or ~/.cache/dgan_jax/metrics) and
converted once to a `.npz` beside it; only that conversion needs torch. See docs/projected.md.
"""
import functools
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.metrics import weights as weights_io
from dgan_jax.models import torch_layers

WHAT = 'EfficientNet-lite0 (timm tf_efficientnet_lite0, the projected discriminator backbone)'
FILE_NAMES = ('tf_efficientnet_lite0-0aa007d2.pth.npz', 'tf_efficientnet_lite0-0aa007d2.pth')
URLS = ('https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/'
        'tf_efficientnet_lite0-0aa007d2.pth',)
DOC = 'docs/projected.md'

STEM_CHANNELS = 32
BN_EPS = 1e-3
# timm's tf_efficientnet_lite0 block arguments, one row per stage:
# (kind, repeats, kernel, first stride, expansion, out channels); 'ds' = depthwise separable,
# 'ir' = inverted residual.
ARCH = (('ds', 1, 3, 1, 1, 16), ('ir', 2, 3, 2, 6, 24), ('ir', 2, 5, 2, 6, 40),
        ('ir', 3, 3, 2, 6, 80), ('ir', 3, 5, 1, 6, 112), ('ir', 4, 5, 2, 6, 192),
        ('ir', 1, 3, 1, 6, 320))
# The reference's four feature stages as half-open ranges of timm's `blocks` (stem before 0).
STAGES = ((0, 2), (2, 3), (3, 5), (5, 7))
STAGE_CHANNELS = (24, 40, 112, 320)
STAGE_STRIDES = (4, 8, 16, 32)


def block_specs():
  """[(stage, index, kind, in_ch, out_ch, kernel, stride, expansion)] for every block."""
  specs, cin = [], STEM_CHANNELS
  for stage, (kind, repeats, kernel, stride, expansion, cout) in enumerate(ARCH):
    for i in range(repeats):
      specs.append((stage, i, kind, cin, cout, kernel, stride if i == 0 else 1, expansion))
      cin = cout
  return specs


def _conv_init(key, shape, dtype=jnp.float32):
  """timm's `_init_weight_goog` for convolutions: N(0, 2 / fan_out), fan_out = k*k*out/groups."""
  kh, kw, cin_per_group, cout = shape
  groups = 1 if cin_per_group > 1 else cout   # the only grouped convs are depthwise
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (kh * kw * cout / groups))


def _conv_bn(x, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
             depthwise: bool = False, act: bool = True, collection: str, conv: str, bn: str):
  """conv (no bias, TF 'same' padding) -> inference BatchNorm -> optional ReLU6.

  Call from a compact method: the weight and statistics become submodules `conv` and `bn` of
  the calling module (timm's names).
  """
  k = kernel_size
  groups = in_channels if depthwise else 1
  weight = _Vars(collection, (k, k, in_channels // groups, out_channels), name=conv)()
  if stride == 1:
    pad = ((k - 1) // 2,) * 2
    padding = (pad, pad)
  else:
    padding = (torch_layers.tf_same_padding(x.shape[1], k, stride),
               torch_layers.tf_same_padding(x.shape[2], k, stride))
  x = torch_layers.conv2d(x, weight, stride, padding, groups)
  stats = _BNVars(collection, out_channels, name=bn)()
  x = torch_layers.batch_norm_inference(x, stats['running_mean'], stats['running_var'],
                                        stats['weight'], stats['bias'], BN_EPS)
  return jnp.clip(x, 0.0, 6.0) if act else x


class _Vars(nn.Module):
  """A convolution weight (HWIO) in collection `collection`, named like timm's (`<name>/weight`)."""
  collection: str
  shape: tuple

  @nn.compact
  def __call__(self):
    return self.variable(self.collection, 'weight',
                         lambda: _conv_init(self.make_rng('params'), self.shape)).value


class _BNVars(nn.Module):
  """BatchNorm weight, bias and running statistics (timm's init: 1, 0, 0, 1)."""
  collection: str
  channels: int

  @nn.compact
  def __call__(self):
    c = self.channels
    init = {'weight': jnp.ones, 'bias': jnp.zeros, 'running_mean': jnp.zeros, 'running_var': jnp.ones}
    return {k: self.variable(self.collection, k, f, (c,), jnp.float32).value
            for k, f in init.items()}


class _Block(nn.Module):
  """A depthwise-separable ('ds') or inverted-residual ('ir') block, as timm's."""
  kind: str
  in_channels: int
  out_channels: int
  kernel_size: int
  stride: int
  expansion: int
  collection: str

  @nn.compact
  def __call__(self, x):
    col, k, s = self.collection, self.kernel_size, self.stride
    shortcut = x
    if self.kind == 'ds':
      x = _conv_bn(x, self.in_channels, self.in_channels, k, s, depthwise=True, collection=col,
                   conv='conv_dw', bn='bn1')
      x = _conv_bn(x, self.in_channels, self.out_channels, 1, act=False, collection=col,
                   conv='conv_pw', bn='bn2')
    else:
      mid = self.in_channels * self.expansion
      x = _conv_bn(x, self.in_channels, mid, 1, collection=col, conv='conv_pw', bn='bn1')
      x = _conv_bn(x, mid, mid, k, s, depthwise=True, collection=col, conv='conv_dw', bn='bn2')
      x = _conv_bn(x, mid, self.out_channels, 1, act=False, collection=col, conv='conv_pwl',
                   bn='bn3')
    if s == 1 and self.in_channels == self.out_channels:
      x = x + shortcut
    return x


class EfficientNetLite0(nn.Module):
  """NHWC images (ImageNet range as the caller feeds them) -> the four feature stages.

  `__call__(x)` returns a tuple of 4 NHWC maps: (24, 40, 112, 320) channels at strides
  (4, 8, 16, 32). Inference only: BatchNorm uses the stored running statistics.
  """
  collection: str = 'params'

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'EfficientNetLite0 expects NHWC RGB images, got shape {x.shape}.')
    x = _conv_bn(x, 3, STEM_CHANNELS, 3, 2, collection=self.collection, conv='conv_stem',
                 bn='bn1')
    specs = block_specs()
    outputs = []
    for first, last in STAGES:
      for stage, i, kind, cin, cout, k, s, e in specs:
        if first <= stage < last:
          x = _Block(kind, cin, cout, k, s, e, self.collection, name=f'blocks_{stage}_{i}')(x)
      outputs.append(x)
    return tuple(outputs)


# ---------------------------------------------------------------------------------------------
# timm state dict <-> our variables.

# timm's (conv, bn) names of the parts of a block, in order.
_BLOCK_PARTS = {'ds': (('conv_dw', 'bn1'), ('conv_pw', 'bn2')),
                'ir': (('conv_pw', 'bn1'), ('conv_dw', 'bn2'), ('conv_pwl', 'bn3'))}
_BN_LEAVES = ('weight', 'bias', 'running_mean', 'running_var')


def timm_key_map() -> list[tuple[str, tuple[str, ...]]]:
  """[(timm state-dict key, our variable path)] for every backbone tensor, in timm's order."""
  pairs = [('conv_stem.weight', ('conv_stem', 'weight'))]
  pairs += [(f'bn1.{leaf}', ('bn1', leaf)) for leaf in _BN_LEAVES]
  for stage, i, kind, *_ in block_specs():
    for conv, bn in _BLOCK_PARTS[kind]:
      ours = f'blocks_{stage}_{i}'
      pairs.append((f'blocks.{stage}.{i}.{conv}.weight', (ours, conv, 'weight')))
      pairs += [(f'blocks.{stage}.{i}.{bn}.{leaf}', (ours, bn, leaf)) for leaf in _BN_LEAVES]
  return pairs


# Keys of timm's full model that the four stages do not use.
_UNUSED_PREFIXES = ('conv_head.', 'bn2.', 'classifier.')


def variables_from_timm(state: Mapping[str, Any], source: str = 'timm state dict') -> dict:
  """timm `tf_efficientnet_lite0` state dict (numpy or torch tensors) -> our variable tree.

  Convolution weights OIHW -> HWIO; num_batches_tracked and the classifier head are dropped.
  Raises ValueError naming missing, unexpected or mis-shaped keys.
  """
  tree: dict = {}
  used = set()
  problems = []
  for key, path in timm_key_map():
    if key not in state:
      problems.append(f'missing {key}')
      continue
    value = state[key]
    value = np.array(value.detach().cpu().numpy() if hasattr(value, 'detach') else value,
                     np.float32, copy=True)
    if path[-1] == 'weight' and value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    used.add(key)
    node = tree
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  extra = sorted(k for k in state if k not in used and not k.endswith('num_batches_tracked')
                 and not k.startswith(_UNUSED_PREFIXES))
  if extra:
    problems.append(f'unexpected keys {extra[:6]}')
  if problems:
    raise ValueError(f'{source} is not a tf_efficientnet_lite0 state dict: '
                     + '; '.join(problems[:8]))
  weights_io.check_against_template(tree, variables_template(), source)
  return tree


def variables_to_timm(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Our variable tree -> timm's state-dict keys (the four stages only), OIHW weights."""
  out = {}
  for key, path in timm_key_map():
    node = tree
    for part in path:
      node = node[part]
    value = np.asarray(node, np.float32)
    out[key] = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value
  return out


@functools.lru_cache(maxsize=1)
def variables_template():
  """Shapes of the variable tree (no computation)."""
  shapes = jax.eval_shape(EfficientNetLite0().init, jax.random.key(0),
                          jnp.zeros((1, 64, 64, 3), jnp.float32))
  return shapes['params']


def find_weights_file(path: str | os.PathLike | None = None):
  """The weight file to load: `path`, else one of FILE_NAMES in the weights folder.

  Raises FileNotFoundError naming the file, the download URL and the folder (before anything
  is compiled).
  """
  return weights_io.find_weights(path, FILE_NAMES, WHAT, URLS, doc=DOC)


def load_variables(path: str | os.PathLike | None = None) -> dict:
  """The backbone variable tree from `path` (.pth or the converted .npz) or the weights folder.

  A .pth is converted once into `<file>.npz` beside it (or in the weights folder when that
  folder is read-only); later calls read the .npz without torch.
  """
  return weights_io.load_converted(
      find_weights_file(path), lambda p: variables_from_timm(weights_io.read_torch_tensors(p), str(p)),
      variables_template())
