"""The GPU and TPU programs build: the training step (with and without R1), the controller update,
generation and the FID feature extraction lower for platforms ('cuda', 'tpu') with `jax.export` on
this CPU, with the accelerator code paths forced (native convolutions, the bfloat16 'auto' policy),
so a lowering failure on those backends fails CI here."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import cifar10
from dgan_jax import families, platform, steps
from dgan_jax.metrics import inception
from dgan_jax.models import conv

PLATFORMS = ('cuda', 'tpu')


def abstract(tree, sharding):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


@pytest.fixture(scope='module')
def setup():
  config = cifar10.get_config('smoke')
  config.model.mixed_precision = 'auto'
  config.loss.pl_weight = 2.0
  with platform.for_platform('cuda'):
    assert not conv.use_polyphase()
    family = families.get(config)
    nets = family.build_networks(config)
    g_tx, d_tx = family.make_optimizers(config)
    mesh = steps.make_mesh(jax.devices()[:2])
    state = abstract(jax.eval_shape(lambda: family.init_state(config, nets, g_tx, d_tx)),
                     NamedSharding(mesh, P()))
  return config, nets, mesh, g_tx, d_tx, state


def export_text(fn, *args) -> str:
  with platform.for_platform('cuda'):
    exported = jax.export.export(fn, platforms=PLATFORMS)(*args)
  assert exported.platforms == PLATFORMS
  return exported.mlir_module()


@pytest.mark.parametrize('phases', [steps.Phases(), steps.Phases(pl=True, r1=True)],
                         ids=['main', 'pl_r1'])
def test_training_step_lowers_for_gpu_and_tpu(setup, phases):
  config, nets, mesh, g_tx, d_tx, state = setup
  data = NamedSharding(mesh, P('data'))
  batch = {'image': jax.ShapeDtypeStruct((16, 32, 32, 3), jnp.uint8, sharding=data),
           'label': jax.ShapeDtypeStruct((16, 0), jnp.float32, sharding=data)}
  with platform.for_platform('cuda'):
    fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, phases)
  text = export_text(fn, state, batch)
  assert 'bf16' in text                                  # the reduced-precision blocks
  # Native transposed convolutions (lhs dilation), not the CPU's polyphase pieces.
  assert re.search(r'lhs_dilate\s*=\s*\[2, 2\]', text)
  # float32 means float32: every dot and convolution at HIGHEST precision (TF32 off).
  ops = len(re.findall(r'stablehlo\.(?:convolution|dot_general)', text))
  assert ops and text.count('HIGHEST') >= ops


def test_allow_tf32_keeps_the_default_precision(setup):
  config, nets, mesh, g_tx, d_tx, state = setup
  config = config.copy_and_resolve_references()
  config.model.allow_tf32 = True
  data = NamedSharding(mesh, P('data'))
  batch = {'image': jax.ShapeDtypeStruct((16, 32, 32, 3), jnp.uint8, sharding=data),
           'label': jax.ShapeDtypeStruct((16, 0), jnp.float32, sharding=data)}
  with platform.for_platform('cuda'):
    fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases())
  assert 'HIGHEST' not in export_text(fn, state, batch)


def test_controller_generation_and_features_lower(setup):
  config, nets, mesh, _, _, state = setup
  with platform.for_platform('cuda'):
    update = steps.make_controller_update(config, mesh)
  export_text(update, state)
  z = jax.ShapeDtypeStruct((4, nets.z_dim), jnp.float32)
  c = jax.ShapeDtypeStruct((4, 0), jnp.float32)
  generate = jax.jit(lambda p, b, z, c: nets.generate(p, b, z, c, jax.random.key(0))[0])
  export_text(generate, state.g_ema_params, state.g_buffers, z, c)
  variables = inception.variables_template()
  images = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.uint8)
  text = export_text(jax.jit(inception.apply_fn()), variables, images)
  assert 'stablehlo.convolution' in text


def test_d_input_and_fromrgb_stay_float32_under_bfloat16(setup):
  """Under the GPU/TPU bfloat16 policy, in the traced training step (R1 phase included): every
  image D sees (diffused reals and fakes) and every fromrgb layer is float32, while the blocks'
  other convolutions run in bfloat16 (docs/models.md: bf16 rounding at t = 1 exceeds the noise)."""
  config, nets, mesh, g_tx, d_tx, state = setup
  seen = {'d_images': set(), 'fromrgb': set(), 'conv0': set()}

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == '__call__':
      if type(module).__name__ == 'Discriminator':
        seen['d_images'].add(jnp.dtype(args[0].dtype).name)
      elif module.name in ('fromrgb', 'conv0') and module.parent is not None and \
          type(module.parent).__name__ == 'DiscriminatorBlock':
        seen[module.name].add(jnp.dtype(args[0].dtype).name)
    return next_fun(*args, **kwargs)

  data = NamedSharding(mesh, P('data'))
  batch = {'image': jax.ShapeDtypeStruct((16, 32, 32, 3), jnp.uint8, sharding=data),
           'label': jax.ShapeDtypeStruct((16, 0), jnp.float32, sharding=data)}
  with platform.for_platform('cuda'), nn.intercept_methods(record):
    fn = steps.make_train_step(config, nets, mesh, g_tx, d_tx, steps.Phases(r1=True))
    jax.eval_shape(fn, state, batch)
  assert seen == {'d_images': {'float32'}, 'fromrgb': {'float32'}, 'conv0': {'bfloat16'}}, seen
