"""dgan_jax: Diffusion-GAN (Wang et al., ICLR 2023) in JAX/Flax."""

from dgan_jax import xla_cpu as _xla_cpu

_xla_cpu.apply()   # before JAX starts a backend: XLA:CPU flags (dgan_jax/xla_cpu.py)

__version__ = "0.1.0"
