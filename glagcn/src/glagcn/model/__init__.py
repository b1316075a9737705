"""GLA-GCN: adaptive graph convolution blocks (global part) + per-joint output (local part)."""

from glagcn.model.build import build_model, model_from_checkpoint
from glagcn.model.glagcn import GLAGCN, SlidingLifter, count_parameters, macs_per_frame

__all__ = [
    "GLAGCN",
    "SlidingLifter",
    "build_model",
    "count_parameters",
    "macs_per_frame",
    "model_from_checkpoint",
]
