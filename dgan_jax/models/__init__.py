"""Diffusion-StyleGAN2 networks: `build_models(config)` returns (Generator, Discriminator)."""
