"""Images/s of FID feature extraction (32x32 uint8 -> 2048-d pool features) vs pytorch-fid.

Both networks get random weights (the real ones cannot be downloaded here; speed does not depend
on the values). Ours: dgan_jax.metrics.inception (TF1 resize to 299 + Inception, jit, batch
sharded over all local devices). Theirs: pytorch-fid's InceptionV3 (F.interpolate resize inside)
in eval mode under torch.no_grad on the same machine. Then the time of a full 50k FID on the
current backend: 50k generated + 50k real images through the network plus the float64 moments
and the matrix square root, extrapolated from the measured rate when --count < 50000.

  python benchmarks/fid_throughput.py [--batch 64] [--count 256] [--rounds 3] [--torch-threads N]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))


def make_ours(batch, images):
  """A callable that extracts features + float64 moments of `images`; returns the backend info."""
  import jax  # pylint: disable=import-outside-toplevel
  from dgan_jax.metrics import formulas, inception  # pylint: disable=import-outside-toplevel
  from dgan_jax.metrics.extract import FeatureExtractor  # pylint: disable=import-outside-toplevel
  from dgan_jax.metrics.inception_net import InceptionV3  # pylint: disable=import-outside-toplevel
  variables = InceptionV3().init(jax.random.key(0), np.zeros((1, 299, 299, 3), np.float32))
  extractor = FeatureExtractor(inception.feature_net(variables=variables), batch)
  extractor(images[:batch])  # Compile.

  def run():
    acc = formulas.MomentAccumulator(2048)
    extractor.run((images[i:i + batch] for i in range(0, len(images), batch)), len(images),
                  progress=False, consumers=[lambda f: acc.update(f['features'])])
  info = f'{jax.default_backend()}, {len(jax.devices())} device(s), global batch {extractor.batch_size}'
  return run, info


def make_pytorch_fid(batch, images, threads):
  """pytorch-fid's InceptionV3 (its own resize and normalisation) over `images`."""
  import torch  # pylint: disable=import-outside-toplevel
  import metrics_torch_refs as refs  # pylint: disable=import-outside-toplevel
  import pytest  # pylint: disable=import-outside-toplevel
  if threads:
    torch.set_num_threads(threads)
  net, _ = refs.pytorch_fid_inception(0)
  import pytorch_fid.inception as pf  # pylint: disable=import-outside-toplevel
  mp = pytest.MonkeyPatch()
  mp.setattr(pf, 'fid_inception_v3', lambda: net)
  model = pf.InceptionV3([3]).eval()  # resize_input=True, normalize_input=True: its defaults.
  mp.undo()
  x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)

  def run():
    with torch.no_grad():
      for i in range(0, len(images), batch):
        model(x[i:i + batch])[0].numpy()
  with torch.no_grad():
    model(x[:batch])  # Warm-up.
  return run, f'torch CPU, {torch.get_num_threads()} threads, batch {batch}'


def timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def time_fid_math():
  from dgan_jax.metrics import formulas  # pylint: disable=import-outside-toplevel
  """Seconds of the 2048x2048 Frechet distance (matrix square root) on this host."""
  rng = np.random.default_rng(0)
  mu, sigma = formulas.mean_cov(rng.normal(size=(4096, 2048)).astype(np.float32))
  t0 = time.perf_counter()
  formulas.frechet_distance(mu, sigma, mu + 0.1, sigma + 0.01 * np.eye(2048))
  return time.perf_counter() - t0


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--count', type=int, default=256, help='images per timed round')
  p.add_argument('--torch-threads', type=int, default=0, help='0: torch default')
  p.add_argument('--skip-torch', action='store_true')
  p.add_argument('--rounds', type=int, default=3)
  args = p.parse_args()
  images = np.random.RandomState(0).randint(0, 256, (args.count, 32, 32, 3)).astype(np.uint8)

  import jax  # pylint: disable=import-outside-toplevel
  backend = jax.default_backend()
  ours_fn, ours_info = make_ours(args.batch, images)
  theirs_fn = None
  if not args.skip_torch:
    theirs_fn, theirs_info = make_pytorch_fid(args.batch, images, args.torch_threads)
  # Alternate the two so that load from other processes hits both alike; report medians.
  ours_t, theirs_t = [], []
  for _ in range(args.rounds):
    ours_t.append(timed(ours_fn))
    if theirs_fn is not None:
      theirs_t.append(timed(theirs_fn))
  ours = args.count / float(np.median(ours_t))
  print(f'dgan_jax inception ({ours_info}): {ours:.2f} images/s '
        f'(median of {args.rounds} rounds of {args.count} images)')
  if theirs_fn is not None:
    theirs = args.count / float(np.median(theirs_t))
    print(f'pytorch-fid InceptionV3 ({theirs_info}): {theirs:.2f} images/s')
    ratios = [t / o for o, t in zip(ours_t, theirs_t)]
    print(f'speed-up: {ours / theirs:.2f}x (per-round ratios {", ".join(f"{r:.2f}" for r in ratios)})')
  sqrtm_s = time_fid_math()
  total = 100_000 / ours + sqrtm_s  # `ours` already includes the float64 moment updates.
  note = (f'extrapolated from {args.count} timed images' if args.count < 50_000 else 'measured')
  print(f'full fid50k_full on {backend} (50k generated + 50k real, moments, sqrtm): '
        f'{total / 60:.1f} min ({note}; generator time not included; '
        f'sqrtm {sqrtm_s:.1f} s)')


if __name__ == '__main__':
  main()
