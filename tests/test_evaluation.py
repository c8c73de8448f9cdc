"""Metrics in the training loop and `--mode=eval`, with a tiny domain feature network."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import cifar10
import data_helpers
from dgan_jax import evaluation, families, train
from dgan_jax.metrics.extract import FeatureNet


class TinyFeatures(nn.Module):
  @nn.compact
  def __call__(self, images):
    x = nn.relu(nn.Conv(8, (3, 3), strides=(2, 2))(images.astype(jnp.float32) / 127.5 - 1))
    return {'features': nn.Dense(16)(jnp.mean(x, axis=(1, 2)))}


def tiny_net():
  """Factory named by config.eval.domain_nets ('tiny=test_evaluation:tiny_net')."""
  module = TinyFeatures()
  return FeatureNet('tiny-test', module.apply,
                    module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8)))


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
  """64 random 8x8 images: the loop, the metrics and the cache without CIFAR-10's decode and a
  32x32 compile (minutes on a 2-core CPU)."""
  return data_helpers.write_dataset(tmp_path_factory.mktemp('data') / 'rand8.zip',
                                    data_helpers.random_images(64, 8))


@pytest.fixture
def config(tiny_zip, tmp_path):
  config = cifar10.get_config('smoke')
  config.data.path = str(tiny_zip)
  config.data.resolution = 8
  config.model.mixed_precision = 'float32'
  config.eval.metrics = 'fid1k-tiny,kid1k-tiny'
  config.eval.domain_nets = 'tiny=test_evaluation:tiny_net'
  config.eval.cache_dir = str(tmp_path / 'cache')
  config.eval.batch_size = 250
  config.eval.every_kimg = 0.032     # once in the middle of the 4 steps, and at the end
  config.loss.r1_gamma = 0.0         # no R1 phase to compile: the metrics are under test here
  return config


def test_metrics_in_the_loop_keep_the_best_and_eval_mode_agrees(config, tmp_path):
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  lines = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [l['step'] for l in lines] == [2, 4]
  assert set(lines[0]['results']) == {'fid1k-tiny', 'kid1k-tiny'}
  best = json.loads((workdir / 'best.json').read_text())
  values = [l['results']['fid1k-tiny'] for l in lines]
  assert best['value'] == min(values) and best['step'] == [2, 4][values.index(min(values))]
  assert (workdir / 'best' / str(best['step'])).is_dir()
  assert list((tmp_path / 'cache').iterdir())          # real statistics cached
  # --mode=eval on the saved run: the latest checkpoint gives the in-loop final values.
  results = train.evaluate_run(config, str(workdir))
  assert results['fid1k-tiny'] == pytest.approx(values[-1], rel=1e-5)
  assert len((workdir / 'metrics.jsonl').read_text().splitlines()) == 3
  # An earlier checkpoint by --step: the value the loop measured at that step.
  earlier = train.evaluate_run(config, str(workdir), step=2)
  assert earlier['fid1k-tiny'] == pytest.approx(values[0], rel=1e-5)
  with pytest.raises(FileNotFoundError, match='no checkpoint at step 3|No checkpoint at step 3'):
    train.evaluate_run(config, str(workdir), step=3)


def test_bad_metric_name_fails_before_training(config, tmp_path):
  config.eval.metrics = 'fid50k_fulll'
  with pytest.raises(ValueError, match='unknown metric'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_missing_inception_weights_name_the_file(config, tmp_path, capsys):
  """--mode=eval fails naming the file; training skips the metric with a warning (offline runs)."""
  config.eval.metrics = 'fid50k_full,kid1k-tiny'
  config.eval.inception_path = str(tmp_path / 'nowhere' / 'pt_inception-2015-12-05-6726825d.pth')
  nets = families.build_networks(config)
  with pytest.raises(FileNotFoundError, match='pt_inception-2015-12-05'):
    evaluation.Evaluator(config, nets)
  evaluator = evaluation.training_evaluator(config, nets)
  assert evaluator.names == ['kid1k-tiny']
  assert 'metric fid50k_full skipped' in capsys.readouterr().out
  config.eval.metrics = 'fid50k_full'
  assert evaluation.training_evaluator(config, nets) is None
