"""Trains the CIFAR-10 feature classifier of the offline metrics (fd10k-clf, kid10k-clf).

    python -m dgan_jax.metrics.train_classifier --data=/path/to/cifar10/train.zip \
        [--test=/path/to/cifar10/test.zip] [--out=PATH.npz] [--steps=2500] [--seed=0]

Reads a labelled stylegan2-ada zip or folder (dgan_jax.data.image_folder), trains
`dgan_jax.metrics.classifier.Classifier` with AdamW and a cosine learning rate, random x-flips and
4-pixel random crops, reports the accuracy on the test set (default: `test.zip` beside the
training zip, if there) and writes the weights with their metadata. Deterministic for a seed: the
batch order, the augmentation and the initialisation all come from it.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dgan_jax.data.image_folder import DatasetError, ImageFolder
from dgan_jax.metrics import classifier


def load_labelled(path: str | pathlib.Path, max_images: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 NHWC images, int32 class ids) of a labelled dataset."""
  folder = ImageFolder(str(path), use_labels=True, max_images=max_images)
  if folder.labels.ndim != 2 or folder.c_dim < 2:
    raise DatasetError(f'{path}: the classifier needs integer class labels in dataset.json.')
  images = folder.load_all()
  folder.close()
  return images, folder.labels.argmax(axis=1).astype(np.int32)


def augment(rng: np.random.Generator, images: np.ndarray, pad: int = 4) -> np.ndarray:
  """Random x-flips and random crops of `pad`-pixel edge-padded images (uint8 NHWC)."""
  n, h, w, _ = images.shape
  flip = rng.random(n) < 0.5
  images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
  dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
  rows = dy[:, None] + np.arange(h)[None, :]
  cols = dx[:, None] + np.arange(w)[None, :]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def make_optimizer(steps: int, lr: float, weight_decay: float) -> optax.GradientTransformation:
  warmup = max(1, min(200, steps // 10))
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1))
  return optax.adamw(schedule, weight_decay=weight_decay)


def train(images: np.ndarray, labels: np.ndarray, *, steps: int, batch_size: int = 128,
          lr: float = 3e-3, weight_decay: float = 5e-4, label_smoothing: float = 0.1,
          seed: int = 0, widths=(16, 32, 64), convs=(1, 2, 2), feature_dim: int = 128,
          log: Callable[[str], None] = print, log_every: int = 200):
  """Returns (network, variables) after `steps` AdamW steps on augmented minibatches."""
  if steps < 1 or batch_size < 1:
    raise ValueError(f'steps and batch_size must be positive, got {steps}, {batch_size}')
  num_classes = int(labels.max()) + 1
  net = classifier.Classifier(widths=tuple(widths), convs=tuple(convs), feature_dim=feature_dim,
                              num_classes=num_classes)
  variables = classifier.init_variables(net, jax.random.key(seed), images.shape[1],
                                        images.shape[3])
  optimizer = make_optimizer(steps, lr, weight_decay)
  opt_state = optimizer.init(variables)

  @jax.jit
  def step(variables, opt_state, x, y):
    def loss_fn(v):
      logits = net.apply(v, x)['logits']
      targets = optax.smooth_labels(jax.nn.one_hot(y, num_classes), label_smoothing)
      return optax.softmax_cross_entropy(logits, targets).mean(), logits
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables)
    updates, opt_state = optimizer.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss, (logits.argmax(-1) == y).mean()

  rng = np.random.default_rng(seed)
  order, pos = rng.permutation(len(images)), 0
  losses, accs = [], []
  for i in range(steps):
    if pos + batch_size > len(order):
      order, pos = rng.permutation(len(images)), 0
    idx = order[pos:pos + batch_size]
    pos += batch_size
    x = augment(rng, images[idx])
    variables, opt_state, loss, acc = step(variables, opt_state, x, labels[idx])
    losses.append(loss)
    accs.append(acc)
    if (i + 1) % log_every == 0 or i + 1 == steps:
      log(f'step {i + 1}/{steps}: loss {np.mean(jax.device_get(losses)):.3f}, '
          f'train accuracy {np.mean(jax.device_get(accs)):.3f}')
      losses, accs = [], []
  return net, jax.device_get(variables)


def accuracy(net: classifier.Classifier, variables, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 500) -> float:
  apply = jax.jit(lambda v, x: net.apply(v, x)['logits'].argmax(-1))
  correct = 0
  for i in range(0, len(images), batch_size):
    correct += int((np.asarray(apply(variables, images[i:i + batch_size]))
                    == labels[i:i + batch_size]).sum())
  return correct / len(images)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m dgan_jax.metrics.train_classifier',
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', required=True, help='labelled training zip or folder')
  parser.add_argument('--test', default=None,
                      help='labelled test zip or folder (default: test.zip beside --data)')
  parser.add_argument('--out', default=None,
                      help=f'weights file (default: {classifier.default_path()})')
  parser.add_argument('--steps', type=int, default=2500)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--lr', type=float, default=3e-3)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--widths', default='16,32,64', help='channels of the three conv stages')
  parser.add_argument('--convs', default='1,2,2', help='3x3 convs in each stage')
  parser.add_argument('--feature-dim', type=int, default=128, help='width of the features')
  parser.add_argument('--max-images', type=int, default=0, help='train on a subset (0 = all)')
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out).expanduser() if args.out else classifier.default_path()
  test = args.test or str(pathlib.Path(args.data).expanduser().with_name('test.zip'))
  log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
  try:
    start = time.perf_counter()
    images, labels = load_labelled(args.data, args.max_images)
    log(f'{len(images)} training images from {args.data} ({time.perf_counter() - start:.1f} s)')
    start = time.perf_counter()
    net, variables = train(images, labels, steps=args.steps, batch_size=args.batch, lr=args.lr,
                           seed=args.seed, widths=[int(w) for w in args.widths.split(',')],
                           convs=[int(c) for c in args.convs.split(',')],
                           feature_dim=args.feature_dim, log=log)
    train_seconds = time.perf_counter() - start
    meta = {
        'dataset': str(args.data), 'num_train_images': int(len(images)),
        'architecture': {'widths': list(net.widths), 'convs': list(net.convs),
                         'feature_dim': net.feature_dim,
                         'num_classes': net.num_classes, 'groups': net.groups,
                         'resolution': int(images.shape[1]), 'channels': int(images.shape[3])},
        'training': {'steps': args.steps, 'batch': args.batch, 'lr': args.lr, 'seed': args.seed,
                     'seconds': round(train_seconds, 1), 'backend': jax.default_backend()},
        'train_accuracy': accuracy(net, variables, images[:10000], labels[:10000]),
    }
    if pathlib.Path(test).exists():
      test_images, test_labels = load_labelled(test)
      meta['test_dataset'] = str(test)
      meta['test_accuracy'] = accuracy(net, variables, test_images, test_labels)
    else:
      log(f'no test set at {test}: test accuracy not measured')
    classifier.save(out, variables, meta)
  except (DatasetError, ValueError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 1
  log(f'trained in {train_seconds:.0f} s; accuracy: train (first 10k) '
      f'{meta["train_accuracy"]:.4f}, test {meta.get("test_accuracy", float("nan")):.4f}')
  log(f'wrote {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
