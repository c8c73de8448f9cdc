"""Labels of generated samples come from the training set's label distribution (the reference's
all_gen_c: the label of a uniformly drawn dataset item), drawn independently in each phase."""
import jax
import numpy as np

import data_helpers
from dgan_jax import steps
from dgan_jax.data import pipeline


def test_label_distribution_of_a_zip(tmp_path):
  path = tmp_path / 'labelled.zip'
  data_helpers.write_dataset(path, data_helpers.random_images(8), labels=[0, 0, 0, 0, 0, 1, 2, 2])
  config = data_helpers.data_config(str(path), use_labels=True)
  labels, probs = pipeline.label_distribution(config)
  assert labels.shape == (3, 3) and set(labels.sum(axis=1)) == {1.0}
  by_class = dict(zip(labels.argmax(axis=1).tolist(), probs.tolist()))
  assert by_class == {0: 5 / 8, 1: 1 / 8, 2: 2 / 8}
  config.use_labels = False
  assert pipeline.label_distribution(config) is None


def test_label_sampler_follows_the_distribution():
  dist = (np.eye(3, dtype=np.float32), np.array([0.7, 0.1, 0.2]))
  draw = jax.jit(steps.label_sampler(3, dist), static_argnums=1)
  labels = np.asarray(draw(jax.random.key(0), 20_000))
  assert labels.shape == (20_000, 3) and set(labels.sum(axis=1)) == {1.0}
  np.testing.assert_allclose(labels.mean(axis=0), [0.7, 0.1, 0.2], atol=0.015)
  other = np.asarray(draw(jax.random.key(1), 20_000))
  assert not np.array_equal(labels, other)       # independent draws per key (phase)
  uniform = np.asarray(steps.label_sampler(4)(jax.random.key(0), 8000))
  np.testing.assert_allclose(uniform.mean(axis=0), 0.25, atol=0.02)
  assert steps.label_sampler(0)(jax.random.key(0), 5).shape == (5, 0)
