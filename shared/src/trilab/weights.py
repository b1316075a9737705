"""A model's weights as saved and named: the plain module under its training wrappers, and a
digest that names its weights."""

from __future__ import annotations

import hashlib

import torch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose state dict is saved: without DDP or torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the unwrapped module's parameters and buffers, by name: equal weights give
    an equal digest on any rank, and a run's or an artefact's weights can be named by it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
