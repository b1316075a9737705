"""Load a trained checkpoint (DRAG or backbone-only) for prediction, visualisation, evaluation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from drag.checkpoint_stage import require_stage, stored_threshold
from drag.data.images import IMAGE_SUFFIXES
from drag.errors import NoImagesError
from drag.model.backbone import Backbone
from drag.model.drag import build_drag
from trilab.checkpoint import CheckpointError, read_checkpoint


def load_trained(
    path: str | Path,
    device: torch.device,
    accept: Sequence[str] = ("drag", "finetune_backbone"),
    tool: str = "this tool",
) -> tuple[nn.Module, dict]:
    """Rebuild the model from the config stored with the weights; returns (model, info).

    Only checkpoints of the ``accept``-ed stages load; any other stage is refused with the path
    of the right file. ``info``: ``stage``, ``kind`` ("drag" or "backbone"), ``image_size``,
    ``threshold`` (validation-chosen, or None) and ``threshold_note`` (where it comes from).
    """
    payload = read_checkpoint(path, map_location="cpu")
    stage = require_stage(payload, path, accept, tool)
    extra = payload.get("extra", {})
    if stage == "finetune_backbone":
        model: nn.Module = Backbone(extra["arch"], pretrained=False)
        info = {"kind": "backbone", "image_size": extra["image_size"]}
    else:
        config = extra["model_config"]
        model = build_drag(Backbone(config["arch"], pretrained=False), config)
        info = {"kind": "drag", "image_size": config["image_size"], "groups": config["groups"]}
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        first = "; ".join(str(error).splitlines()[:3])
        raise CheckpointError(f"{path} does not fit its stored model config: {first}") from None
    threshold, note = stored_threshold(payload, path)
    info.update({"stage": stage, "threshold": threshold, "threshold_note": note})
    return model.to(device).eval(), info


def decision_threshold(info: dict, override: float | None = None, log=None) -> float:
    """The p_private threshold to use, said in the log with its origin; 0.5 gets a warning
    saying why no validation-chosen one is available."""
    if override is not None:
        threshold, message, warn = float(override), "given on the command line", False
    elif info["threshold"] is not None:
        threshold, message, warn = info["threshold"], info["threshold_note"], False
    else:
        threshold, warn = 0.5, True
        message = (
            f"the argmax rule, because {info['threshold_note']}; evaluate.py chooses one on a "
            "validation split, threshold=T sets one"
        )
    line = f"decision threshold on p_private: {threshold:.3f} ({message})"
    if log is None:
        if warn:
            warnings.warn(line, stacklevel=2)
    elif warn:
        log.warning(line)
    else:
        log.info(line)
    return threshold


def list_images(root: str | Path) -> list[str]:
    """Every file with an image suffix under ``root`` (or ``root`` itself if it is a file)."""
    root = Path(root)
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise NoImagesError(f"image folder not found: {root}")
    paths = sorted(
        str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise NoImagesError(f"no image files under {root} (looked for {suffixes}, recursively)")
    return paths
