"""Diffusion-StyleGAN2 (the authors' pixel-level code, on stylegan2-ada-pytorch) as a model family.

Networks from dgan_jax/models (the reference presets); the default phases and losses of
dgan_jax/steps.py: non-saturating loss, lazy R1 through the diffusion, optional path length.
"""
from __future__ import annotations

import jax
import ml_collections
import optax

from dgan_jax.families.base import ImageFamily, size_problems
from dgan_jax.networks import Networks

# Network sizes that must be positive integers.
_G_SIZES = ('z_dim', 'w_dim', 'channel_base', 'channel_max', 'mapping_layers')
_D_SIZES = ('channel_base', 'channel_max', 'mapping_layers')


class StyleGAN2Family(ImageFamily):
  name = 'stylegan2'

  def check(self, config: ml_collections.ConfigDict) -> list[str]:
    if 'G' not in config.model or 'D' not in config.model:
      return ['config.model has no G/D settings: start from configs/base.get_image_config or call '
              'dgan_jax.models.presets.apply_preset(config, name).']
    m = config.model
    problems = size_problems(m.G, _G_SIZES, 'model.G.') + size_problems(m.D, _D_SIZES, 'model.D.')
    freeze = config.train.get('freeze_d', 0)
    if not isinstance(freeze, int) or freeze < 0:
      problems.append(f'train.freeze_d={freeze!r} must be an integer >= 0 (D layers to freeze).')
    return problems

  def make_optimizers(self, config: ml_collections.ConfigDict):
    """The default Adam pair; with `train.freeze_d = N`, D's first N layers get zero updates
    (the reference's Freeze-D: its `trainable=False` layers)."""
    g_tx, d_tx = super().make_optimizers(config)
    freeze = config.train.get('freeze_d', 0)
    if freeze:
      frozen = frozen_d_layers(config, freeze)

      def labels(params):
        return _label_tree(params, frozen)
      d_tx = optax.multi_transform({'train': d_tx, 'frozen': optax.set_to_zero()}, labels)
    return g_tx, d_tx

  def transfer_state(self, config: ml_collections.ConfigDict, fresh, path: str):
    from dgan_jax import import_torch
    return self.transfer_from(config, fresh, path, import_torch.read_pickle(path))

  def transfer_from(self, config: ml_collections.ConfigDict, fresh, path: str, ref):
    """transfer_state with the pickle already read (`ref`, an import_torch.ReferencePickle)."""
    from dgan_jax import import_torch
    state, fresh_d = import_torch.transfer_state(path, config, fresh, ref)
    notes = [f'D entries that start fresh (not in the pickle, or another shape): {fresh_d}'] \
        if fresh_d else []
    return state, notes

  def export_state_dicts(self, config: ml_collections.ConfigDict, state, with_d: bool) -> dict:
    from dgan_jax import export
    return export.stylegan2_state_dicts(config, state, with_d)

  def export_kwargs(self, config: ml_collections.ConfigDict, with_d: bool) -> dict:
    from dgan_jax.interop import reference_config
    kwargs = {'G_kwargs': reference_config.generator_kwargs(config)}
    if with_d:
      kwargs['D_kwargs'] = reference_config.discriminator_kwargs(config)
    return kwargs

  def build_networks(self, config: ml_collections.ConfigDict) -> Networks:
    from dgan_jax.models import build_models
    G, D = build_models(config)
    res, ch = config.data.resolution, config.data.channels
    return Networks(G=G, D=D, z_dim=config.model.G.z_dim, c_dim=config.model.get('c_dim', 0),
                    sample_shape=(res, res, ch), has_buffers=True)


def frozen_d_layers(config: ml_collections.ConfigDict, count: int) -> set:
  """Paths ('b32/conv0', ...) of D's first `count` layers in the reference's layer order: per block
  from the highest resolution down, fromrgb (first block, or every block of 'skip'), conv0, conv1,
  skip ('resnet'); the 4x4 epilogue and the mapping are never frozen (reference freeze_layers)."""
  d, res = config.model.D, config.data.resolution
  names = []
  r = res
  while r >= 8:
    if r == res or d.architecture == 'skip':
      names.append(f'b{r}/fromrgb')
    names += [f'b{r}/conv0', f'b{r}/conv1']
    if d.architecture == 'resnet':
      names.append(f'b{r}/skip')
    r //= 2
  return set(names[:count])


def _label_tree(params, frozen: set):
  """'frozen' for the leaves under a frozen layer path, 'train' elsewhere."""
  def label(path, _):
    keys = [p.key for p in path]
    return 'frozen' if any('/'.join(keys[:2]) == f for f in frozen) else 'train'
  return jax.tree_util.tree_map_with_path(label, params)


FAMILY = StyleGAN2Family()
