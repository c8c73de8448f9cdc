"""The projected discriminator's feature network (reference `pg_modules/projector.py`, F_RandomProj).

images (224x224, or the dataset's size when >= 224) -> frozen EfficientNet-lite0, four stages
(24, 40, 112, 320 channels at strides 4..32) -> feature-level diffusion -> random, frozen mixers:

* CCM (cross-channel mixing, proj_type >= 1): a 1x1 conv with bias per stage, to
  [cout, 2 cout, 4 cout, 8 cout] channels with `expand` (the reference's default), else cout each;
* CSM (cross-scale mixing, proj_type 2): FeatureFusionBlocks from the coarsest stage up; each adds
  the coarser block's output (none for the coarsest), upsamples x2 bilinearly with
  align_corners=True, and applies a 1x1 conv with bias halving the channels with `expand` (except
  the finest): outputs [cout, cout, 2 cout, 4 cout] at twice the stage resolutions.

The diffusion runs on the four backbone maps (`d_pos='first'`, the reference default) or on the four
CSM outputs (`'last'`, proj_type 2 only), independently per map (own t and noise draws), with one
t per sample and channel when `config.diffusion.t_per_channel` (the reference). `'none'` skips it.

Nothing here trains: backbone and mixers live in the 'frozen' collection. The mixers are drawn at
`init` from the 'params' RNG with torch's default Conv2d initialisation (U(+-1/sqrt(fan_in)) for
weight and bias), so their statistics match the reference's, and are then checkpointed and
exported with the run. The backbone is EfficientNet-lite0 with timm's initialisation after `init`;
`install_backbone` puts the pretrained weights in (efficientnet_lite.load_variables).
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dgan_jax import diffusion as diffusion_lib
from dgan_jax.models import efficientnet_lite, torch_layers

PROJ_TYPES = (0, 1, 2)
D_POSITIONS = ('first', 'last', 'none')
# Feature-map resolutions the reference assigns to the four stages (it fixes im_res = 256 for
# them whatever the data resolution; CSM doubles them). They pick the mini-discriminators' depth.
_BACKBONE_RESOLUTIONS = (64, 32, 16, 8)


def ccm_channels(cout: int, expand: bool) -> tuple[int, ...]:
  return (cout, cout * 2, cout * 4, cout * 8) if expand else (cout,) * 4


def feature_channels(proj_type: int, cout: int = 64, expand: bool = True) -> tuple[int, ...]:
  """Channels of the four maps the mini-discriminators see (reference F_RandomProj.CHANNELS)."""
  if proj_type == 0:
    return efficientnet_lite.STAGE_CHANNELS
  if proj_type == 1:
    return ccm_channels(cout, expand)
  return (cout, cout, cout * 2, cout * 4) if expand else (cout,) * 4


def feature_resolutions(proj_type: int) -> tuple[int, ...]:
  """The reference's nominal resolutions of the four maps (F_RandomProj.RESOLUTIONS)."""
  return tuple(r * 2 for r in _BACKBONE_RESOLUTIONS) if proj_type == 2 else _BACKBONE_RESOLUTIONS


def check_settings(proj_type: int, d_pos: str) -> None:
  if proj_type not in PROJ_TYPES:
    raise ValueError(f'proj_type={proj_type!r} is invalid; use 0 (backbone only), 1 (+ cross-channel '
                     'mixing) or 2 (+ cross-scale mixing, the reference default).')
  if d_pos not in D_POSITIONS:
    raise ValueError(f'd_pos={d_pos!r} is unknown; use one of {D_POSITIONS} (reference --d_pos: '
                     "'first' = on the backbone features, 'last' = on the mixed features).")
  if d_pos == 'last' and proj_type != 2:
    raise ValueError("d_pos='last' diffuses the cross-scale-mixed features, which only "
                     "proj_type=2 has (the reference then silently applies no diffusion); use "
                     "d_pos='first' or 'none'.")


def map_key(key: jax.Array, index: int) -> jax.Array:
  """The diffusion key of feature map `index` (0..3) from the per-call key."""
  return jax.random.fold_in(key, index)


class FrozenConv1x1(nn.Module):
  """nn.Conv2d(cin, cout, 1, bias=True) with torch's default init, in the 'frozen' collection."""
  in_channels: int
  out_channels: int

  @nn.compact
  def __call__(self, x):
    init = torch_layers.uniform_init(self.in_channels)
    weight = self.variable('frozen', 'weight', lambda: init(
        self.make_rng('params'), (1, 1, self.in_channels, self.out_channels))).value
    bias = self.variable('frozen', 'bias', lambda: init(
        self.make_rng('params'), (self.out_channels,))).value
    return torch_layers.conv2d(x, weight) + bias.astype(x.dtype)


class FeatureFusion(nn.Module):
  """The reference's FeatureFusionBlock: (x [+ skip]) -> bilinear x2 (align_corners) -> 1x1 conv."""
  features: int
  expand: bool

  @nn.compact
  def __call__(self, x, skip=None):
    if skip is not None:
      x = x + skip
    x = torch_layers.interpolate_bilinear(x, (x.shape[1] * 2, x.shape[2] * 2), align_corners=True)
    out = self.features // 2 if self.expand else self.features
    return FrozenConv1x1(self.features, out, name='out_conv')(x)


class RandomMixers(nn.Module):
  """CCM (and CSM for proj_type 2) on the four maps; names as the reference's `scratch`."""
  proj_type: int
  cout: int = 64
  expand: bool = True

  @nn.compact
  def __call__(self, feats):
    channels = ccm_channels(self.cout, self.expand)
    mixed = [FrozenConv1x1(efficientnet_lite.STAGE_CHANNELS[i], channels[i],
                           name=f'layer{i}_ccm')(f) for i, f in enumerate(feats)]
    if self.proj_type == 1:
      return mixed
    out3 = FeatureFusion(channels[3], self.expand, name='layer3_csm')(mixed[3])
    out2 = FeatureFusion(channels[2], self.expand, name='layer2_csm')(out3, mixed[2])
    out1 = FeatureFusion(channels[1], self.expand, name='layer1_csm')(out2, mixed[1])
    out0 = FeatureFusion(channels[0], False, name='layer0_csm')(out1, mixed[0])
    return [out0, out1, out2, out3]


class FeatureNetwork(nn.Module):
  """Backbone + diffusion + mixers: NHWC images -> four NHWC feature maps.

  `diffusion` is the FrozenConfigDict of `config.diffusion` (None: never diffuse). With `t_epl`
  (int [epl_size], the caller's pool of steps), `T` and `key` given and `d_pos` != 'none', map i
  is diffused with `diffusion.diffuse(fold_in(key, i), ...)` (its own t and noise draws);
  `t_epl=None` skips the diffusion.
  """
  proj_type: int = 2
  cout: int = 64
  expand: bool = True
  d_pos: str = 'first'
  diffusion: Optional[Any] = None

  def __post_init__(self):
    check_settings(self.proj_type, self.d_pos)
    super().__post_init__()

  def _diffuse(self, feats, t_epl, T, key):
    if t_epl is None or self.d_pos == 'none' or self.diffusion is None:
      return list(feats)
    if T is None or key is None:
      raise ValueError('FeatureNetwork: t_epl is given without T (the current number of steps) '
                       'or without the diffusion key.')
    return [diffusion_lib.diffuse(map_key(key, i), f, t_epl, T, self.diffusion)[0]
            for i, f in enumerate(feats)]

  @nn.compact
  def __call__(self, x, t_epl: Optional[jax.Array] = None, T: Optional[jax.Array] = None,
               key: Optional[jax.Array] = None):
    feats = efficientnet_lite.EfficientNetLite0(collection='frozen', name='pretrained')(x)
    if self.d_pos == 'first':
      feats = self._diffuse(feats, t_epl, T, key)
    if self.proj_type == 0:
      return list(feats)
    feats = RandomMixers(self.proj_type, self.cout, self.expand, name='scratch')(feats)
    if self.d_pos == 'last':
      feats = self._diffuse(feats, t_epl, T, key)
    return feats


def install_backbone(d_variables, backbone: Any):
  """A copy of D's variables with the backbone subtree of 'frozen' replaced by `backbone` (the
  tree from efficientnet_lite.load_variables); raises if its shapes differ."""
  from dgan_jax.metrics import weights as weights_io  # pylint: disable=import-outside-toplevel
  frozen = dict(d_variables['frozen'])
  feature_network = dict(frozen['feature_network'])
  weights_io.check_against_template(backbone, feature_network['pretrained'], 'backbone weights')
  feature_network['pretrained'] = jax.tree.map(jnp.asarray, backbone)
  frozen['feature_network'] = feature_network
  return {**d_variables, 'frozen': frozen}
