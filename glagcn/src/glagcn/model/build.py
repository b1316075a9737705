"""A GLA-GCN from its configuration (``configs/model/``) or from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from glagcn.model.glagcn import GLAGCN, architecture_for
from glagcn.skeleton import Skeleton, get_skeleton
from trilab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint


def build_model(model_cfg: DictConfig | dict, skeleton: Skeleton) -> GLAGCN:
    cfg = dict(model_cfg)
    widths = cfg.get("filter_widths") or architecture_for(int(cfg["receptive_field"]))
    return GLAGCN(
        skeleton,
        filter_widths=tuple(widths),
        channels=int(cfg.get("channels", 96)),
        temporal_kernel=int(cfg.get("temporal_kernel", 9)),
        dropout=float(cfg.get("dropout", 0.1)),
        graph_dropout=float(cfg.get("graph_dropout", 0.1)),
        output_layer=str(cfg.get("output_layer", "per_joint")),
        sequence_branch=bool(cfg.get("sequence_branch", True)),
        # A checkpoint written before temporal_padding existed was trained with 'centred'.
        temporal_padding=str(cfg.get("temporal_padding", "centred")),
        init=str(cfg.get("init", "authors")),
        # keys written after these options existed; older checkpoints computed the defaults
        causal=bool(cfg.get("causal", False)),
        input_layout=str(cfg.get("input_layout", "skeleton")),
        input_bn=bool(cfg.get("input_bn", True)),
        graph=str(cfg.get("graph", "skeleton")),
    )


def model_from_checkpoint(path: str | Path, device: torch.device) -> tuple[GLAGCN, dict]:
    """Rebuild the model a checkpoint was trained with and load its weights."""
    payload = read_checkpoint(path)
    extra = payload.get("extra", {})
    if "model_config" not in extra or "skeleton" not in extra:
        raise CheckpointError(f"{path} has no model_config/skeleton: not a glagcn checkpoint")
    model = build_model(extra["model_config"], get_skeleton(extra["skeleton"]))
    load_checkpoint(path, model=model, restore_rng=False)
    return model.to(device).eval(), extra
