"""dgan_jax: Diffusion-GAN (Wang et al., ICLR 2023) in JAX/Flax."""

__version__ = "0.1.0"
