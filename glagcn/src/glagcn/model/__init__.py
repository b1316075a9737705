"""GLA-GCN: adaptive graph convolution blocks (global part) + per-joint output (local part)."""

from glagcn.model.glagcn import GLAGCN, SlidingLifter, count_parameters, macs_per_frame

__all__ = ["GLAGCN", "SlidingLifter", "count_parameters", "macs_per_frame"]
