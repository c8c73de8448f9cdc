"""GAN metrics computed as the reference (stylegan2-ada-pytorch `metrics/`) does, sharded in JAX.

Modules: `inception` (FID Inception-v3 and its weights), `vgg16` (precision/recall features),
`tf_resize` (the reference's TF1 bilinear resize), `formulas` (FID, KID, IS, PR on features),
`extract` (sharded streaming feature extraction), `stats_cache` (cached real-data statistics),
`evaluate` (metric registry and the entry point the training loop calls). See docs/metrics.md.
"""
