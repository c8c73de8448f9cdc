"""FID Inception-v3: weights loading, the reference preprocessing, and the public `load` entry point.

    fn = dgan_jax.metrics.inception.load()          # or load('/path/to/weights')
    pool, logits = fn(uint8_nhwc_images)            # [N, 2048], [N, 1008]

Supported weight files (see docs/metrics.md for URLs):
* pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: a state dict in torchvision Inception3 key
  layout (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, ..., `fc.weight`).
* NVIDIA's TorchScript `inception-2015-12-05.pt`: parameters named after the TF graph,
  `layers.<block>.<tower path>.{weight, beta, mean, var}` (conv weight, batch-norm offset and
  running statistics; the TF graph has no batch-norm scale) and `output.{weight, bias}`; e.g.
  `layers.conv.weight`, `layers.mixed_9.tower_1.mixed.conv_1.beta`. Path separators '.' and '_'
  inside the tower path are treated alike.
* A `.npz` written by this module (what the two above are converted to on first use).
"""
import functools
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.metrics import weights as weights_io
from dgan_jax.metrics.inception_net import InceptionV3
from dgan_jax.metrics.tf_resize import resize_bilinear_tf1

NAME = 'inception-2015-12-05'
INPUT_SIZE = 299
FILE_NAMES = ('inception-2015-12-05.npz', 'pt_inception-2015-12-05-6726825d.pth',
              'inception-2015-12-05.pt')
URLS = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
        'pt_inception-2015-12-05-6726825d.pth',
        'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/'
        'inception-2015-12-05.pt')

# torchvision/pytorch-fid module names -> TF graph names used by NVIDIA's TorchScript file.
_STEM = {'Conv2d_1a_3x3': 'conv', 'Conv2d_2a_3x3': 'conv_1', 'Conv2d_2b_3x3': 'conv_2',
         'Conv2d_3b_1x1': 'conv_3', 'Conv2d_4a_3x3': 'conv_4'}
_BLOCKS = {'Mixed_5b': ('mixed', 'A'), 'Mixed_5c': ('mixed_1', 'A'), 'Mixed_5d': ('mixed_2', 'A'),
           'Mixed_6a': ('mixed_3', 'B'), 'Mixed_6b': ('mixed_4', 'C'), 'Mixed_6c': ('mixed_5', 'C'),
           'Mixed_6d': ('mixed_6', 'C'), 'Mixed_6e': ('mixed_7', 'C'), 'Mixed_7a': ('mixed_8', 'D'),
           'Mixed_7b': ('mixed_9', 'E'), 'Mixed_7c': ('mixed_10', 'E')}
_BRANCHES = {
    'A': {'branch1x1': 'conv', 'branch5x5_1': 'tower.conv', 'branch5x5_2': 'tower.conv_1',
          'branch3x3dbl_1': 'tower_1.conv', 'branch3x3dbl_2': 'tower_1.conv_1',
          'branch3x3dbl_3': 'tower_1.conv_2', 'branch_pool': 'tower_2.conv'},
    'B': {'branch3x3': 'conv', 'branch3x3dbl_1': 'tower.conv', 'branch3x3dbl_2': 'tower.conv_1',
          'branch3x3dbl_3': 'tower.conv_2'},
    'C': {'branch1x1': 'conv', 'branch7x7_1': 'tower.conv', 'branch7x7_2': 'tower.conv_1',
          'branch7x7_3': 'tower.conv_2', 'branch7x7dbl_1': 'tower_1.conv',
          'branch7x7dbl_2': 'tower_1.conv_1', 'branch7x7dbl_3': 'tower_1.conv_2',
          'branch7x7dbl_4': 'tower_1.conv_3', 'branch7x7dbl_5': 'tower_1.conv_4',
          'branch_pool': 'tower_2.conv'},
    'D': {'branch3x3_1': 'tower.conv', 'branch3x3_2': 'tower.conv_1',
          'branch7x7x3_1': 'tower_1.conv', 'branch7x7x3_2': 'tower_1.conv_1',
          'branch7x7x3_3': 'tower_1.conv_2', 'branch7x7x3_4': 'tower_1.conv_3'},
    'E': {'branch1x1': 'conv', 'branch3x3_1': 'tower.conv', 'branch3x3_2a': 'tower.mixed.conv',
          'branch3x3_2b': 'tower.mixed.conv_1', 'branch3x3dbl_1': 'tower_1.conv',
          'branch3x3dbl_2': 'tower_1.conv_1', 'branch3x3dbl_3a': 'tower_1.mixed.conv',
          'branch3x3dbl_3b': 'tower_1.mixed.conv_1', 'branch_pool': 'tower_2.conv'},
}


def conv_name_map() -> dict[str, str]:
  """pytorch-fid BasicConv2d prefix (e.g. 'Mixed_7b.branch3x3_2a') -> NVIDIA prefix."""
  names = {k: f'layers.{v}' for k, v in _STEM.items()}
  for block, (tf_block, kind) in _BLOCKS.items():
    for branch, tf_path in _BRANCHES[kind].items():
      names[f'{block}.{branch}'] = f'layers.{tf_block}.{tf_path}'
  return names


@functools.lru_cache(maxsize=1)
def variables_template() -> Mapping[str, Any]:
  """Shapes of the network's variables (no weights computed)."""
  return jax.eval_shape(InceptionV3().init, jax.random.key(0),
                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


def _set(tree: dict, path: str, value: np.ndarray) -> None:
  *parents, leaf = path.split('/')
  for part in parents:
    tree = tree.setdefault(part, {})
  tree[leaf] = np.asarray(value, np.float32)


def _conv_bn(params: dict, stats: dict, prefix: str, weight, scale, bias, mean, var) -> None:
  """Stores one torch conv+BN unit: OIHW kernel -> HWIO, BN affine in params, running stats apart."""
  _set(params, f'{prefix}/conv/kernel', np.transpose(weight, (2, 3, 1, 0)))
  _set(params, f'{prefix}/bn/scale', scale)
  _set(params, f'{prefix}/bn/bias', bias)
  _set(stats, f'{prefix}/bn/mean', mean)
  _set(stats, f'{prefix}/bn/var', var)


def _take(state: Mapping[str, np.ndarray], key: str, used: set, source: str) -> np.ndarray:
  if key not in state:
    raise ValueError(f'{source}: key {key!r} is missing; is this the right weights file? '
                     f'First keys present: {sorted(state)[:5]}')
  used.add(key)
  return state[key]


def _finish(params, stats, state, used, source, ignore=('num_batches_tracked',)):
  unused = sorted(k for k in state if k not in used and not k.endswith(ignore))
  if unused:
    raise ValueError(f'{source}: {len(unused)} keys were not used, e.g. {unused[:5]}; '
                     'the file does not have the expected layout (see docs/metrics.md).')
  variables = {'params': params, 'batch_stats': stats}
  weights_io.check_against_template(variables, variables_template(), source)
  return variables


def variables_from_pytorch_fid(state: Mapping[str, np.ndarray],
                               source: str = 'pytorch-fid state dict') -> dict[str, Any]:
  """Converts a pytorch-fid / torchvision-layout Inception state dict into flax variables."""
  params, stats, used = {}, {}, set()
  for prefix in conv_name_map():
    g = lambda leaf: _take(state, f'{prefix}.{leaf}', used, source)
    _conv_bn(params, stats, prefix.replace('.', '/'), g('conv.weight'), g('bn.weight'),
             g('bn.bias'), g('bn.running_mean'), g('bn.running_var'))
  _set(params, 'fc/kernel', _take(state, 'fc.weight', used, source).T)
  _set(params, 'fc/bias', _take(state, 'fc.bias', used, source))
  return _finish(params, stats, state, used, source)


def _normalise_nvidia_key(key: str) -> str:
  """'layers.mixed_9.tower.mixed.conv.beta' -> 'layers.mixed_9.tower_mixed_conv.beta'."""
  parts = key.split('.')
  if parts[0] != 'layers' or len(parts) < 4:
    return key
  return '.'.join([parts[0], parts[1], '_'.join(parts[2:-1]), parts[-1]])


def variables_from_nvidia(state: Mapping[str, np.ndarray],
                          source: str = 'NVIDIA inception-2015-12-05.pt') -> dict[str, Any]:
  """Converts NVIDIA's TorchScript Inception parameters (TF graph names) into flax variables."""
  state = {_normalise_nvidia_key(k): v for k, v in state.items()}
  params, stats, used = {}, {}, set()
  for prefix, tf_prefix in conv_name_map().items():
    tf_prefix = _normalise_nvidia_key(tf_prefix + '.x').rsplit('.', 1)[0]
    g = lambda leaf: _take(state, f'{tf_prefix}.{leaf}', used, source)
    beta = g('beta')
    _conv_bn(params, stats, prefix.replace('.', '/'), g('weight'), np.ones_like(beta), beta,
             g('mean'), g('var'))
  _set(params, 'fc/kernel', _take(state, 'output.weight', used, source).T)
  _set(params, 'fc/bias', _take(state, 'output.bias', used, source))
  return _finish(params, stats, state, used, source)


def variables_from_torch_file(path: str | os.PathLike) -> dict[str, Any]:
  """Reads either supported PyTorch file (layout detected from its keys)."""
  state = weights_io.read_torch_tensors(path)
  if 'output.weight' in state:
    return variables_from_nvidia(state, source=str(path))
  return variables_from_pytorch_fid(state, source=str(path))


def load_variables(path: str | os.PathLike | None = None) -> dict[str, Any]:
  """Flax variables of the FID Inception from `path` (.npz, .pth or .pt) or the weights dir.

  A PyTorch file is converted once into `<file>.npz` beside it (or into the weights dir when that
  folder is read-only); later calls read the .npz without torch.
  """
  path = weights_io.find_weights(path, FILE_NAMES, 'FID Inception-v3', URLS)
  return weights_io.load_converted(path, variables_from_torch_file, variables_template())


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """uint8 NHWC (any size, 1 or 3 channels) -> float32 [N, size, size, 3] in the reference's range.

  TF1 bilinear resize (source = dest * in / out, edge clamped), then (x - 128) / 128.
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected uint8 NHWC images with 1 or 3 channels, got shape {images.shape}')
  if images.dtype != jnp.uint8:
    raise ValueError(f'expected uint8 images (0..255), got {images.dtype}; convert generator '
                     'output with dgan_jax.metrics.extract.to_uint8 first.')
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  x = resize_bilinear_tf1(images, (size, size))
  return (x - 128.0) / 128.0


def apply_fn(output_bias: bool = True, precision: Any = jax.lax.Precision.HIGHEST
             ) -> Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]:
  """Pure `(variables, uint8 NHWC) -> (pool [N, 2048], logits [N, 1008])`, ready for jit."""
  net = InceptionV3(output_bias=output_bias, precision=precision)

  def apply(variables, images):
    return net.apply(variables, preprocess(images))
  return apply


def load(path: str | os.PathLike | None = None, *, output_bias: bool = True
         ) -> Callable[[Any], tuple[jax.Array, jax.Array]]:
  """Returns `fn(uint8 NHWC images of any size) -> (pool_features [N, 2048], logits [N, 1008])`.

  `output_bias=False` gives the logits the reference's Inception Score uses.
  """
  variables = jax.device_put(load_variables(path))
  jitted = jax.jit(apply_fn(output_bias))

  def fn(images):
    return jitted(variables, jnp.asarray(images))
  return fn


def feature_net(path: str | os.PathLike | None = None, variables: Any = None):
  """The Inception as a metrics `FeatureNet`: {'features': pool [N, 2048], 'logits': [N, 1008]}.

  Logits come without the output bias, as the reference's Inception Score uses them.
  `variables` (e.g. random ones in tests) skips loading from `path`.
  """
  from dgan_jax.metrics.extract import FeatureNet  # pylint: disable=import-outside-toplevel
  apply = apply_fn(output_bias=False)

  def features(variables, images):
    pool, logits = apply(variables, images)
    return {'features': pool, 'logits': logits}
  return FeatureNet(NAME, features, load_variables(path) if variables is None else variables)
