"""VGG16 features for precision/recall (the reference's `pr50k3_full` detector, NVIDIA's vgg16.pt).

The network is torchvision's VGG16 layout (13 3x3 convs with ReLU, 5 max pools, fc1-fc3). The
precision/recall features are the 4096-d fc2 activations after ReLU (what `vgg16.pt` returns with
`return_features=True`). Preprocessing, as that file does it: uint8 images are resized to 224x224
with the same TF1 bilinear resize as the Inception (source = dest * in / out, edge clamped),
scaled to [0, 1], and normalised with the ImageNet mean/std.

Supported weight files:
* NVIDIA's TorchScript `vgg16.pt`: `layers.conv1..conv13.{weight,bias}`, `layers.fc1..fc3.{weight,bias}`
  (its LPIPS weights `lpips0..4` are ignored).
* torchvision's `vgg16-397923af.pth` state dict: `features.{0,2,5,...,28}.{weight,bias}`,
  `classifier.{0,3,6}.{weight,bias}`. These are different (torchvision-trained) weights: PR values
  from them are not comparable with published ones.
* A `.npz` written by this module.
"""
import functools
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax.metrics import weights as weights_io
from dgan_jax.metrics.tf_resize import resize_bilinear_tf1

NAME = 'vgg16'
INPUT_SIZE = 224
FILE_NAMES = ('vgg16.npz', 'vgg16.pt', 'vgg16-397923af.pth')
URLS = ('https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt',)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CONV_CHANNELS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# torchvision `features.<i>` indices of the 13 convs, in order.
_TV_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class VGG16(nn.Module):
  """Normalised 224x224 NHWC -> (fc2 features after ReLU [N, 4096], logits [N, 1000])."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    i = 0
    for stage in _CONV_CHANNELS:
      for ch in stage:
        i += 1
        x = nn.relu(nn.Conv(ch, (3, 3), padding=((1, 1), (1, 1)), precision=self.precision,
                            name=f'conv{i}')(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    # torchvision flattens NCHW; transpose so fc1 sees the same element order.
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(4096, precision=self.precision, name='fc1')(x))
    features = nn.relu(nn.Dense(4096, precision=self.precision, name='fc2')(x))
    logits = nn.Dense(1000, precision=self.precision, name='fc3')(features)
    return features, logits


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 NHWC (1 or 3 channels, any size) -> ImageNet-normalised float32 [N, 224, 224, 3]."""
  if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != jnp.uint8:
    raise ValueError(f'expected uint8 NHWC images with 1 or 3 channels, got {images.dtype} '
                     f'{images.shape}')
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  x = resize_bilinear_tf1(images, (INPUT_SIZE, INPUT_SIZE)) / 255.0
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


@functools.lru_cache(maxsize=1)
def variables_template():
  return jax.eval_shape(VGG16().init, jax.random.key(0),
                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))


def _from_named(state: Mapping[str, np.ndarray], conv_keys, fc_keys, source: str):
  params = {}
  used = set()

  def take(key):
    if key not in state:
      raise ValueError(f'{source}: key {key!r} is missing; first keys present: {sorted(state)[:5]}')
    used.add(key)
    return np.asarray(state[key], np.float32)
  for i, prefix in enumerate(conv_keys, start=1):
    params[f'conv{i}'] = {'kernel': np.transpose(take(f'{prefix}.weight'), (2, 3, 1, 0)),
                          'bias': take(f'{prefix}.bias')}
  for i, prefix in enumerate(fc_keys, start=1):
    params[f'fc{i}'] = {'kernel': take(f'{prefix}.weight').T, 'bias': take(f'{prefix}.bias')}
  unused = sorted(k for k in state if k not in used and not k.startswith('lpips'))
  if unused:
    raise ValueError(f'{source}: {len(unused)} keys not used, e.g. {unused[:5]}')
  variables = {'params': params}
  weights_io.check_against_template(variables, variables_template(), source)
  return variables


def variables_from_torchvision(state, source='torchvision VGG16 state dict'):
  """torchvision `vgg16` state dict (features.N / classifier.N) -> flax variables."""
  return _from_named(state, [f'features.{i}' for i in _TV_CONV_INDEX],
                     [f'classifier.{i}' for i in (0, 3, 6)], source)


def variables_from_nvidia(state, source='NVIDIA vgg16.pt'):
  """NVIDIA TorchScript `vgg16.pt` parameters (layers.convN / layers.fcN) -> flax variables."""
  return _from_named(state, [f'layers.conv{i}' for i in range(1, 14)],
                     [f'layers.fc{i}' for i in range(1, 4)], source)


def load_variables(path: str | os.PathLike | None = None):
  """VGG16 variables from `path` (.npz, .pt or .pth) or the weights dir; torch files are
  converted once into `<file>.npz`."""
  path = weights_io.find_weights(path, FILE_NAMES, 'VGG16 (precision/recall)', URLS)
  return weights_io.load_converted(path, _variables_from_torch_file, variables_template())


def _variables_from_torch_file(path) -> dict:
  state = weights_io.read_torch_tensors(path)
  if 'layers.conv1.weight' in state:
    return variables_from_nvidia(state, str(path))
  return variables_from_torchvision(state, str(path))


def feature_net(path: str | os.PathLike | None = None, variables: Any = None):
  """VGG16 as a metrics `FeatureNet`: {'features': fc2 after ReLU [N, 4096]}."""
  from dgan_jax.metrics.extract import FeatureNet  # pylint: disable=import-outside-toplevel
  net = VGG16()

  def features(variables, images):
    return {'features': net.apply(variables, preprocess(images))[0]}
  return FeatureNet(NAME, features, load_variables(path) if variables is None else variables)


def load(path: str | os.PathLike | None = None):
  """Returns `fn(uint8 NHWC images) -> (features [N, 4096], logits [N, 1000])`."""
  variables = jax.device_put(load_variables(path))
  net = VGG16()
  jitted = jax.jit(lambda v, x: net.apply(v, preprocess(x)))
  return lambda images: jitted(variables, jnp.asarray(images))
