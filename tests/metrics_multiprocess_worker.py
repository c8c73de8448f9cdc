"""One process of the two-process (multi-host) extraction test; run by test_metrics_multihost.py.

argv: process_id port out_dir. Each process feeds its own half of the images; both must end up
with the features of all of them.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import jax  # noqa: E402

jax.config.update('jax_platforms', 'cpu')
jax.config.update('jax_num_cpu_devices', 2)
jax.config.update('jax_cpu_collectives_implementation', 'gloo')

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def main():
  pid, port, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
  jax.distributed.initialize(f'localhost:{port}', num_processes=2, process_id=pid)
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
  from dgan_jax.metrics.extract import FeatureExtractor, FeatureNet  # pylint: disable=import-outside-toplevel

  module = nn.Dense(5)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 48)))
  net = FeatureNet('dense', lambda v, x: {'features': module.apply(
      v, x.reshape(x.shape[0], -1).astype(jnp.float32) / 255.0)}, variables)
  images = np.random.RandomState(0).randint(0, 256, (37, 4, 4, 3)).astype(np.uint8)
  mine = images[pid::2]  # 19 and 18 images: uneven shares, several steps, padding.
  extractor = FeatureExtractor(net, batch_size=8)
  feats = extractor.run([mine[:7], mine[7:]], num_items=None, progress=False)['features']
  limited = extractor.run([mine], num_items=21, progress=False)['features']
  np.savez(os.path.join(out_dir, f'p{pid}.npz'), feats=feats, limited=limited,
           direct=np.asarray(net.apply(variables, jnp.asarray(images))['features']))
  jax.distributed.shutdown()


if __name__ == '__main__':
  main()
