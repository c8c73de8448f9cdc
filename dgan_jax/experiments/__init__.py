"""Experiments that explain or measure Diffusion-GAN outside the training loop (paper figures)."""
