"""The offline classifier measure (fd{N}k-clf, kid{N}k-clf): training writes a weight file that
`classifier.load` reads, deterministic batch-independent features, FD of a set with itself, the
metric names, the loop's evaluator finding `eval.clf_path`, and the errors for a missing file and
a wrong image size. Tiny widths and a few steps on 8x8 images: seconds."""
import jax
import numpy as np
import pytest

import data_helpers
from configs import cifar10_dcgan
from dgan_jax import errors, evaluation, families
from dgan_jax.metrics import classifier, evaluate, formulas, train_classifier

SIZE, COUNT = 8, 48
TINY = ['--widths=4,4,8', '--convs=1,1,1', '--feature-dim=8', '--steps=3', '--batch=8']


@pytest.fixture(scope='module')
def labelled_zip(tmp_path_factory):
  images = data_helpers.random_images(COUNT, SIZE, seed=1)
  labels = [i % 3 for i in range(COUNT)]
  path = tmp_path_factory.mktemp('clf_data') / 'train.zip'
  return data_helpers.write_dataset(path, images, labels=labels), images


@pytest.fixture(scope='module')
def weight_file(labelled_zip, tmp_path_factory):
  path, _ = labelled_zip
  out = tmp_path_factory.mktemp('clf') / 'clf.npz'
  assert train_classifier.main([f'--data={path}', f'--out={out}'] + TINY) == 0
  return out


def test_training_writes_a_file_that_load_reads(weight_file):
  net, variables, meta = classifier.load(weight_file)
  arch = meta['architecture']
  assert (arch['widths'], arch['convs'], arch['feature_dim']) == ([4, 4, 8], [1, 1, 1], 8)
  assert (arch['num_classes'], arch['resolution'], arch['channels']) == (3, SIZE, 3)
  assert meta['num_train_images'] == COUNT and meta['training']['steps'] == 3
  assert 0.0 <= meta['train_accuracy'] <= 1.0
  assert net.widths == (4, 4, 8) and net.feature_dim == 8
  assert variables['params']['fc']['kernel'].shape == (8, 8)


def test_features_are_deterministic_given_the_weights_and_batch_independent(weight_file,
                                                                            labelled_zip):
  _, images = labelled_zip
  first = classifier.feature_net(weight_file)
  again = classifier.feature_net(weight_file)          # loaded a second time
  assert first.name == again.name and first.name.startswith('clf-')
  apply = jax.jit(first.apply)
  a = np.asarray(apply(first.variables, images)['features'])
  b = np.asarray(jax.jit(again.apply)(again.variables, images)['features'])
  np.testing.assert_array_equal(a, b)
  assert a.shape == (COUNT, 8) and np.isfinite(a).all()
  # GroupNorm, not BatchNorm: an image's features do not depend on the rest of its batch.
  part = np.asarray(apply(first.variables, images[5:9])['features'])
  np.testing.assert_allclose(part, a[5:9], rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")   # dead ReLUs: singular
def test_fd_of_a_set_with_itself_is_zero_and_positive_against_another(weight_file, labelled_zip):
  _, images = labelled_zip
  net = classifier.feature_net(weight_file)
  feats = np.asarray(net.apply(net.variables, images)['features'], np.float64)
  mu, sigma = formulas.mean_cov(feats)
  assert formulas.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
  other = np.asarray(net.apply(net.variables, images // 8)['features'], np.float64)   # darker
  assert formulas.frechet_distance(mu, sigma, *formulas.mean_cov(other)) > 1e-5   # (3e-4: 3 steps, 8 features)


def test_clf_metric_names_parse():
  fd = evaluate.parse_metric('fd10k-clf')
  assert (fd.kind, fd.num_gen, fd.max_real, fd.net) == ('fid', 10_000, 10_000, 'clf')
  kid = evaluate.parse_metric('kid10k-clf')
  assert (kid.kind, kid.num_gen, kid.max_real, kid.net) == ('kid', 10_000, 10_000, 'clf')
  assert evaluate.lower_is_better('fd10k-clf') and evaluate.lower_is_better('kid10k-clf')
  with pytest.raises(errors.UserError, match='non-Inception'):
    evaluate.parse_metric('fd10k')


def test_a_missing_weight_file_names_the_train_command(tmp_path):
  missing = tmp_path / 'absent.npz'
  with pytest.raises(errors.UserError) as e:
    classifier.load(missing)
  assert isinstance(e.value, FileNotFoundError)
  message = str(e.value)
  assert str(missing) in message
  assert 'python -m dgan_jax.metrics.train_classifier' in message and f'--out={missing}' in message
  with pytest.raises(FileNotFoundError, match='train_classifier'):
    evaluate.feature_nets_for('fd10k-clf', clf_path=str(missing))


def test_a_wrong_image_size_is_a_clear_error(weight_file):
  net = classifier.feature_net(weight_file)
  with pytest.raises(errors.UserError, match=f'trained on {SIZE}x{SIZE}x3 images, got'):
    net.apply(net.variables, np.zeros((2, 16, 16, 3), np.uint8))


def test_the_training_loops_evaluator_uses_eval_clf_path(weight_file, tmp_path):
  """config.eval.clf_path reaches the loop's evaluator (a metric whose weights are missing is
  skipped with a warning, so a wrong lookup would silently drop fd10k-clf)."""
  config = cifar10_dcgan.get_config('smoke')
  config.eval.metrics = 'fd10k-clf,kid10k-clf'
  nets = families.build_networks(config)
  config.eval.clf_path = str(weight_file)
  evaluator = evaluation.training_evaluator(config, nets)
  assert evaluator is not None and evaluator.names == ['fd10k-clf', 'kid10k-clf']
  assert evaluator.feature_nets['clf'].name == classifier.feature_net(weight_file).name
  config.eval.clf_path = str(tmp_path / 'absent.npz')
  assert evaluation.training_evaluator(config, nets) is None
