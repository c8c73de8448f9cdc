"""A small CIFAR-10 classifier as an offline domain feature network ('clf': fd10k-clf, kid10k-clf).

The FID Inception weights cannot be downloaded on an air-gapped machine. This network is trained by
the project itself from the dataset (`python -m dgan_jax.metrics.train_classifier`, minutes on a
CPU), and the Frechet distance and KID are computed on its penultimate features with the same
formulas and streaming extraction as FID/KID. It is a proxy: FID stays the reported metric wherever
its weights exist (docs/metrics.md has the calibration table).

Network: uint8 images -> [-1, 1] -> three stages of 3x3 convs (1, 2, 2 convs of 16, 32, 64
channels, each with GroupNorm and ReLU), 2x2 average pooling after the first two stages, global average pooling, a dense layer with ReLU (the
`features`, `feature_dim` wide) and a linear layer to the class logits. GroupNorm, not BatchNorm: the
features of an image do not depend on the batch it is in, and there is no train/eval mode.

Weight file: a `.npz` of the flax variables (`params/...`) plus `__meta__`, a JSON string with the
architecture (widths, feature_dim, num_classes, resolution), the dataset, the test accuracy and how
it was trained. The network is rebuilt from that metadata, so files of any width load.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgan_jax import errors
from dgan_jax.metrics import weights as weights_io

ROLE = 'clf'
FILE_NAME = 'cifar10_clf.npz'
META_KEY = '__meta__'
TRAIN_COMMAND = ('python -m dgan_jax.metrics.train_classifier '
                 '--data=/path/to/cifar10/train.zip --out={out}')


class Classifier(nn.Module):
  """uint8 NHWC -> {'features': [N, feature_dim], 'logits': [N, num_classes]}."""
  widths: Sequence[int] = (16, 32, 64)
  convs: Sequence[int] = (1, 2, 2)   # 3x3 convs per stage.
  feature_dim: int = 128
  num_classes: int = 10
  groups: int = 8

  @nn.compact
  def __call__(self, images):
    x = images.astype(jnp.float32) / 127.5 - 1.0
    for stage, width in enumerate(self.widths):
      for i in range(self.convs[stage]):
        x = nn.Conv(width, (3, 3), padding=1, name=f'conv{stage}_{i}')(x)
        x = nn.GroupNorm(num_groups=min(self.groups, width), name=f'norm{stage}_{i}')(x)
        x = nn.relu(x)
      if stage < len(self.widths) - 1:
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.mean(axis=(1, 2))
    features = nn.relu(nn.Dense(self.feature_dim, name='fc')(x))
    logits = nn.Dense(self.num_classes, name='out')(features)
    return {'features': features, 'logits': logits}


def architecture(meta: Mapping[str, Any]) -> dict:
  """The constructor arguments of `Classifier` stored in a weight file's metadata."""
  arch = meta['architecture']
  return dict(widths=tuple(int(w) for w in arch['widths']),
              convs=tuple(int(c) for c in arch['convs']), feature_dim=int(arch['feature_dim']),
              num_classes=int(arch['num_classes']), groups=int(arch['groups']))


def init_variables(net: Classifier, key: jax.Array, resolution: int = 32, channels: int = 3):
  return net.init(key, jnp.zeros((1, resolution, resolution, channels), jnp.uint8))


def save(path: str | os.PathLike, variables: Mapping[str, Any], meta: Mapping[str, Any]
         ) -> pathlib.Path:
  """Writes the variables and the metadata (a JSON string under `__meta__`) as one .npz."""
  tree = dict(variables)
  tree[META_KEY] = np.asarray(json.dumps(dict(meta), sort_keys=True))
  return weights_io.save_npz(path, tree)


def default_path() -> pathlib.Path:
  return weights_io.weights_dir() / FILE_NAME


def find(path: str | os.PathLike | None = None) -> pathlib.Path:
  """`path`, else `<weights dir>/cifar10_clf.npz`; a missing file names the command that makes it
  (a MissingInputError: a FileNotFoundError, and a UserError for the command lines)."""
  target = pathlib.Path(path).expanduser() if path else default_path()
  if not target.exists():
    raise errors.MissingInputError(
        f'classifier weights {target} not found. They are not downloaded: train them from the '
        f'dataset (a few minutes on a CPU) with\n  {TRAIN_COMMAND.format(out=target)}\n'
        f'then pass the file as config.eval.clf_path, or leave clf_path empty and keep it at '
        f'{default_path()} (the metrics weights folder, ${weights_io.ENV_DIR}). See docs/metrics.md.')
  return target


def load(path: str | os.PathLike | None = None) -> tuple[Classifier, dict, dict]:
  """(network, variables, metadata) from a weight file written by `save`."""
  path = find(path)
  tree = weights_io.load_npz(path)
  if META_KEY not in tree:
    raise errors.UserError(f'{path} has no {META_KEY} entry: it was not written by '
                           'dgan_jax.metrics.train_classifier. Re-create it with\n  '
                           + TRAIN_COMMAND.format(out=path))
  meta = json.loads(str(tree.pop(META_KEY)))
  net = Classifier(**architecture(meta))
  arch = meta['architecture']
  template = jax.eval_shape(functools.partial(init_variables, net, resolution=arch['resolution'],
                                              channels=arch['channels']), jax.random.key(0))
  weights_io.check_against_template(tree, template, str(path))
  return net, tree, meta


def fingerprint(variables: Mapping[str, Any]) -> str:
  """A short hash of the weights: part of the network name, so cached real statistics of one
  classifier are never reused for another."""
  digest = hashlib.sha256()
  for name, value in sorted(weights_io.flatten_tree(variables).items()):
    digest.update(name.encode())
    digest.update(np.ascontiguousarray(value, np.float32).tobytes())
  return digest.hexdigest()[:10]


def feature_net(path: str | os.PathLike | None = None):
  """The classifier as a metrics `FeatureNet` named 'clf-<hash>': {'features', 'logits'}."""
  from dgan_jax.metrics.extract import FeatureNet  # pylint: disable=import-outside-toplevel
  net, variables, meta = load(path)
  resolution, channels = meta['architecture']['resolution'], meta['architecture']['channels']

  def apply(variables, images):
    if images.shape[1:] != (resolution, resolution, channels):
      raise errors.UserError(f'the classifier was trained on {resolution}x{resolution}x{channels} '
                             f'images, got {images.shape[1:]}; train one on this dataset with '
                             + TRAIN_COMMAND.format(out='...'))
    return net.apply(variables, images)
  return FeatureNet(f'{ROLE}-{fingerprint(variables)}', apply, variables)
