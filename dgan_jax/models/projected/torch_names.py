"""Reference state-dict keys <-> our variables for the Projected-GAN networks, both directions.

A key table lists, in the reference's state-dict order, one row per torch module:
(torch prefix, our module path, kind). The kind fixes the leaves and their layouts:

| kind | torch leaves | ours |
|---|---|---|
| sn_conv | [bias], weight_orig [O, I, k, k], weight_u, weight_v | params weight [k, k, I, O], bias; spectral weight_u, weight_v |
| sn_convT | [bias], weight_orig [I, O, k, k], weight_u, weight_v | params weight [k, k, I, O], ...|
| sn_linear | bias, weight_orig [O, I], weight_u, weight_v | params weight [I, O], bias; spectral |
| bn | weight, bias, running_mean, running_var, num_batches_tracked | params weight, bias; batch_stats |
| ccbn | stored_mean, stored_var | batch_stats running_mean, running_var |
| noise, embedding | weight | params weight |
| linear | weight [O, I], bias | params weight [I, O], bias |
| frozen_conv | weight [O, I, 1, 1], bias | frozen weight [1, 1, I, O], bias |
| frozen_conv_bn | a timm conv or BatchNorm of the backbone | frozen (efficientnet_lite's names) |

Tables come from the modules' own settings: `generator_table(G)` for FastGANGenerator (the
StyleGAN2 option uses dgan_jax.models.torch_names), `discriminator_table(D, backbone=False)` for
ProjectedDiscriminator (with `backbone=True` also the EfficientNet keys under
`feature_network.pretrained.layerK.J`, whose timm names efficientnet_lite.timm_key_map gives).
`to_torch(variables, table)` / `from_torch(state_dict, table)` convert.
"""
from typing import Any, Mapping, NamedTuple

import numpy as np

from dgan_jax.models import efficientnet_lite
from dgan_jax.models.projected import discriminator as disc_lib
from dgan_jax.models.projected import fastgan as fastgan_lib


class Row(NamedTuple):
  torch: str                 # module prefix in the reference state dict ('' = leaf key itself)
  ours: tuple[str, ...]      # our module path (the same in every collection)
  kind: str


def _sn(kind: str, bias: bool):
  w = 'weight_orig'
  return ((('bias', 'params', 'bias'),) if bias else ()) + (
      (w, 'params', 'weight'), ('weight_u', 'spectral', 'weight_u'),
      ('weight_v', 'spectral', 'weight_v'))


# kind -> [(torch leaf, our collection, our leaf)] in the reference's order.
LEAVES = {
    'sn_conv': _sn('conv', True), 'sn_conv_nobias': _sn('conv', False),
    'sn_convT_nobias': _sn('convT', False), 'sn_linear': _sn('linear', True),
    'bn': (('weight', 'params', 'weight'), ('bias', 'params', 'bias'),
           ('running_mean', 'batch_stats', 'running_mean'),
           ('running_var', 'batch_stats', 'running_var'),
           ('num_batches_tracked', 'batch_stats', 'num_batches_tracked')),
    'ccbn': (('stored_mean', 'batch_stats', 'running_mean'),
             ('stored_var', 'batch_stats', 'running_var')),
    'noise': (('weight', 'params', 'weight'),),
    'embedding': (('weight', 'params', 'weight'),),
    'linear': (('weight', 'params', 'weight'), ('bias', 'params', 'bias')),
    'frozen_conv': (('weight', 'frozen', 'weight'), ('bias', 'frozen', 'bias')),
    'frozen_timm_conv': (('weight', 'frozen', 'weight'),),
    'frozen_timm_bn': (('weight', 'frozen', 'weight'), ('bias', 'frozen', 'bias'),
                       ('running_mean', 'frozen', 'running_mean'),
                       ('running_var', 'frozen', 'running_var')),
}
_INT_LEAVES = ('num_batches_tracked',)


def _to_torch_layout(kind: str, leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf in ('weight', 'weight_orig') and value.ndim == 4:
    if kind.startswith('sn_convT'):
      return value.transpose(2, 3, 0, 1)          # [k, k, I, O] -> [I, O, k, k]
    return value.transpose(3, 2, 0, 1)            # HWIO -> OIHW
  if leaf in ('weight', 'weight_orig') and value.ndim == 2 and kind in ('sn_linear', 'linear'):
    return value.T
  return value


def _from_torch_layout(kind: str, leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf in ('weight', 'weight_orig') and value.ndim == 4:
    if kind.startswith('sn_convT'):
      return value.transpose(2, 3, 0, 1)          # [I, O, k, k] -> [k, k, I, O]
    return value.transpose(2, 3, 1, 0)            # OIHW -> HWIO
  if leaf in ('weight', 'weight_orig') and value.ndim == 2 and kind in ('sn_linear', 'linear'):
    return value.T
  return value


# ---------------------------------------------------------------------------------------------
# Tables.


def _up_block_rows(prefix: str, ours: tuple, lite: bool, cond: bool) -> list[Row]:
  if cond:
    def ccbn(name):
      p, o = f'{prefix}.{name}', ours + (name,)
      return [Row(p, o + ('norm',), 'ccbn'), Row(f'{p}.gain', o + ('gain',), 'sn_linear'),
              Row(f'{p}.bias', o + ('bias',), 'sn_linear')]
    if lite:
      return [Row(f'{prefix}.conv', ours + ('conv',), 'sn_conv_nobias')] + ccbn('bn')
    return ([Row(f'{prefix}.conv1', ours + ('conv1',), 'sn_conv_nobias'),
             Row(f'{prefix}.conv2', ours + ('conv2',), 'sn_conv_nobias')]
            + ccbn('bn1') + ccbn('bn2') + [Row(f'{prefix}.noise', ours + ('noise',), 'noise')])
  if lite:   # Sequential(Upsample, conv, BN, GLU)
    return [Row(f'{prefix}.1', ours + ('conv',), 'sn_conv_nobias'),
            Row(f'{prefix}.2', ours + ('norm',), 'bn')]
  # Sequential(Upsample, conv, Noise, BN, GLU, conv, Noise, BN, GLU)
  return [Row(f'{prefix}.1', ours + ('conv1',), 'sn_conv_nobias'),
          Row(f'{prefix}.2', ours + ('noise1',), 'noise'),
          Row(f'{prefix}.3', ours + ('norm1',), 'bn'),
          Row(f'{prefix}.5', ours + ('conv2',), 'sn_conv_nobias'),
          Row(f'{prefix}.6', ours + ('noise2',), 'noise'),
          Row(f'{prefix}.7', ours + ('norm2',), 'bn')]


def generator_table(G: fastgan_lib.FastGANGenerator) -> list[Row]:
  """Rows of the reference FastGAN Generator's state dict (`synthesis.*`), in its order."""
  s = 'synthesis'
  rows = [Row(f'{s}.init.init.0', ('init', 'conv'), 'sn_convT_nobias'),
          Row(f'{s}.init.init.1', ('init', 'norm'), 'bn')]
  order = [8, 16, 32, 64, 128, 256]   # then se_64/128/256, to_big, then 512/1024 extras
  for r in order:
    rows += _up_block_rows(f'{s}.feat_{r}', (f'feat_{r}',), G.lite, G.cond)
  for _, big in G.se_pairs[:3]:
    rows += [Row(f'{s}.se_{big}.main.1', (f'se_{big}', 'conv1'), 'sn_conv_nobias'),
             Row(f'{s}.se_{big}.main.3', (f'se_{big}', 'conv2'), 'sn_conv_nobias')]
  rows.append(Row(f'{s}.to_big', ('to_big',), 'sn_conv'))
  if G.img_resolution > 256:
    rows += _up_block_rows(f'{s}.feat_512', ('feat_512',), G.lite, G.cond)
    rows += [Row(f'{s}.se_512.main.1', ('se_512', 'conv1'), 'sn_conv_nobias'),
             Row(f'{s}.se_512.main.3', ('se_512', 'conv2'), 'sn_conv_nobias')]
  if G.img_resolution > 512:
    rows += _up_block_rows(f'{s}.feat_1024', ('feat_1024',), G.lite, G.cond)
  if G.cond:
    rows.append(Row(f'{s}.embed', ('embed',), 'embedding'))
  return rows


def _down_block_rows(prefix: str, ours: tuple, separable: bool, patch: bool) -> list[Row]:
  if patch:    # Sequential(DownBlock, conv 1x1, BN, LReLU)
    return (_down_block_rows(f'{prefix}.main.0', ours + ('down',), separable, False)
            + [Row(f'{prefix}.main.1', ours + ('conv',), 'sn_conv_nobias'),
               Row(f'{prefix}.main.2', ours + ('norm',), 'bn')])
  if separable:   # Sequential(SeparableConv2d, BN, LReLU, AvgPool)
    return [Row(f'{prefix}.main.0.depthwise', ours + ('depthwise',), 'sn_conv_nobias'),
            Row(f'{prefix}.main.0.pointwise', ours + ('pointwise',), 'sn_conv_nobias'),
            Row(f'{prefix}.main.1', ours + ('norm',), 'bn')]
  return [Row(f'{prefix}.main.0', ours + ('conv',), 'sn_conv'),
          Row(f'{prefix}.main.1', ours + ('norm',), 'bn')]


# Reference `_make_efficientnet`: stage K of the projector is `pretrained.layerK`, an
# nn.Sequential over timm's stem (conv_stem, bn1, act1) and `blocks` stages.
_BACKBONE_PREFIXES = {'conv_stem': 'layer0.0', 'bn1': 'layer0.1', 'blocks.0': 'layer0.3',
                      'blocks.1': 'layer0.4', 'blocks.2': 'layer1.0', 'blocks.3': 'layer2.0',
                      'blocks.4': 'layer2.1', 'blocks.5': 'layer3.0', 'blocks.6': 'layer3.1'}


def reference_backbone_key(timm_key: str) -> str:
  """timm key (`blocks.3.1.conv_dw.weight`) -> the projector's (`layer2.0.1.conv_dw.weight`)."""
  for timm_prefix, ref_prefix in _BACKBONE_PREFIXES.items():
    if timm_key == timm_prefix or timm_key.startswith(timm_prefix + '.'):
      return ref_prefix + timm_key[len(timm_prefix):]
  raise KeyError(f'{timm_key} is not a key of the four backbone stages.')


def backbone_rows(prefix: str = 'feature_network.pretrained',
                  ours: tuple = ('feature_network', 'pretrained')) -> list[Row]:
  """EfficientNet rows: torch prefix = the module of each timm key, under `prefix`."""
  rows, seen = [], set()
  for timm_key, path in efficientnet_lite.timm_key_map():
    module = timm_key.rsplit('.', 1)[0]
    if module in seen:
      continue
    seen.add(module)
    kind = 'frozen_timm_conv' if path[-2].startswith('conv') else 'frozen_timm_bn'
    rows.append(Row(f'{prefix}.{reference_backbone_key(module)}', ours + path[:-1], kind))
  return rows


def discriminator_table(D: disc_lib.ProjectedDiscriminator, backbone: bool = False) -> list[Row]:
  """Rows of the reference ProjectedDiscriminator's state dict, in its order; the EfficientNet
  backbone (frozen pretrained weights) only with `backbone=True`."""
  rows = backbone_rows() if backbone else []
  if D.proj_type >= 1:
    f = ('feature_network', 'scratch')
    rows += [Row(f'feature_network.scratch.layer{i}_ccm', f + (f'layer{i}_ccm',), 'frozen_conv')
             for i in range(4)]
    if D.proj_type == 2:
      rows += [Row(f'feature_network.scratch.layer{i}_csm.out_conv',
                   f + (f'layer{i}_csm', 'out_conv'), 'frozen_conv') for i in (3, 2, 1, 0)]
  for i in range(D.num_discs):
    prefix, ours = f'discriminator.mini_discs.{i}', ('discriminator', f'disc{i}')
    start = D.resolutions[i] if not D.patch else 16
    blocks, _ = disc_lib.mini_disc_layout(D.channels[i], start)
    for j in range(len(blocks)):
      rows += _down_block_rows(f'{prefix}.main.{j}', ours + (f'down{j}',), D.separable, D.patch)
    if D.conditional:
      rows += [Row(f'{prefix}.cls', ours + ('cls',), 'sn_conv_nobias'),
               Row(f'{prefix}.embed', ours + ('embed',), 'embedding'),
               Row(f'{prefix}.embed_proj.0', ours + ('embed_proj',), 'linear')]
    else:
      rows.append(Row(f'{prefix}.main.{len(blocks)}', ours + ('out',), 'sn_conv_nobias'))
  return rows


# ---------------------------------------------------------------------------------------------
# Conversion.


def _get(tree: Mapping, path: tuple[str, ...]):
  node = tree
  for part in path:
    node = node[part]
  return node


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  node = tree
  for part in path[:-1]:
    node = node.setdefault(part, {})
  node[path[-1]] = value


def to_torch(variables: Mapping[str, Any], table: list[Row]) -> dict[str, np.ndarray]:
  """Our variables ({'params', 'batch_stats', 'spectral', 'frozen'}) -> {reference key: array}
  in the table's order; float32, num_batches_tracked int64 as torch stores it."""
  out = {}
  for row in table:
    for torch_leaf, collection, leaf in LEAVES[row.kind]:
      value = np.asarray(_get(variables[collection], row.ours + (leaf,)))
      dtype = np.int64 if torch_leaf in _INT_LEAVES else np.float32
      out[f'{row.torch}.{torch_leaf}'] = np.asarray(
          _to_torch_layout(row.kind, torch_leaf, value), dtype)
  return out


def from_torch(state_dict: Mapping[str, Any], table: list[Row],
               ignore_prefixes: tuple[str, ...] = ()) -> dict[str, dict]:
  """{reference key: tensor or array} -> our variables by collection.

  Every table key must be present; keys outside the table (other than `ignore_prefixes`, e.g.
  'feature_network.pretrained.' for a D table without the backbone) are an error, so a
  mismatched network is named rather than half-loaded.
  """
  variables: dict[str, dict] = {}
  used = set()
  missing = []
  for row in table:
    for torch_leaf, collection, leaf in LEAVES[row.kind]:
      key = f'{row.torch}.{torch_leaf}'
      if key not in state_dict:
        missing.append(key)
        continue
      used.add(key)
      value = state_dict[key]
      value = np.array(value.detach().cpu().numpy() if hasattr(value, 'detach') else value,
                       copy=True)
      dtype = np.int32 if torch_leaf in _INT_LEAVES else np.float32
      value = _from_torch_layout(row.kind, torch_leaf, value.astype(dtype))
      _set(variables.setdefault(collection, {}), row.ours + (leaf,), value)
  # torch's BatchNorm2d counter of the frozen backbone is meaningless in inference: skipped.
  skippable = {f'{row.torch}.num_batches_tracked' for row in table if row.kind == 'frozen_timm_bn'}
  extra = sorted(k for k in state_dict if k not in used and k not in skippable
                 and not k.startswith(ignore_prefixes))
  if missing or extra:
    raise ValueError(f'State dict does not match the network: missing {missing[:6]}'
                     f'{" ..." if len(missing) > 6 else ""}, unexpected {extra[:6]}'
                     f'{" ..." if len(extra) > 6 else ""}.')
  return variables

