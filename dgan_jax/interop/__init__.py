"""PyTorch interop: reference kwargs <-> config, pickle reading, a torch generator, run loading.

Torch is an optional extra: only `torch_generator` and writing `.pt` files import it (lazily).
"""
