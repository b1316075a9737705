"""Load a trained checkpoint (DRAG or backbone-only) for prediction and visualisation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from drag.data.images import IMAGE_SUFFIXES
from drag.model.backbone import Backbone
from drag.model.drag import build_drag
from trilab.checkpoint import CheckpointError, read_checkpoint


def load_trained(path: str | Path, device: torch.device) -> tuple[nn.Module, dict]:
    """Rebuild the model from the config stored with the weights; returns (model, info).

    ``info`` has ``image_size``, ``threshold`` (chosen on validation, 0.5 if absent) and
    ``kind`` ("drag" or "backbone").
    """
    payload = read_checkpoint(path, map_location="cpu")
    extra = payload.get("extra", {})
    if "model_config" in extra:
        config = extra["model_config"]
        backbone = Backbone(config["arch"], pretrained=False)
        model: nn.Module = build_drag(backbone, config)
        info = {"kind": "drag", "image_size": config["image_size"], "groups": config["groups"]}
    elif "arch" in extra:
        model = Backbone(extra["arch"], pretrained=False)
        info = {"kind": "backbone", "image_size": extra["image_size"]}
    else:
        raise CheckpointError(f"{path} is neither a DRAG nor a fine-tuned backbone checkpoint")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit its stored model config: {error}") from error
    info["threshold"] = float(extra.get("threshold", 0.5))
    return model.to(device).eval(), info


def list_images(root: str | Path) -> list[str]:
    """Every file with an image suffix under ``root`` (or ``root`` itself if it is a file)."""
    root = Path(root)
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    return sorted(
        str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
