"""Which stage of the recipe wrote a checkpoint, and which decision threshold comes with it.

Every checkpoint records ``extra["stage"]``; checkpoints of earlier versions of this project did
not, so the stage is inferred from what they did store where that is unambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drag.errors import WrongStageError

CHECKPOINT_STAGES = ("finetune_backbone", "pretrain_cgl", "drag")
DESCRIPTIONS = {
    "finetune_backbone": "a fine-tuned backbone (the baseline classifier)",
    "pretrain_cgl": "a CGL-pretraining checkpoint (its graph and classifier are untrained)",
    "drag": "a finished DRAG model",
}
AUTHORS_SOURCE = "authors_notebooks"  # extra["source"] of converted notebook weights


def _stage_folder(path: Path) -> str | None:
    """``<run>/<stage>/checkpoints/x.pt`` -> stage."""
    if path.parent.name == "checkpoints" and path.parent.parent.name in CHECKPOINT_STAGES:
        return path.parent.parent.name
    return None


def stage_of(payload: Mapping[str, Any], path: str | Path) -> str:
    """The stage that wrote ``payload`` (loaded from ``path``)."""
    path = Path(path)
    extra = payload.get("extra") or {}
    stage = extra.get("stage")
    if stage is not None:
        if stage not in CHECKPOINT_STAGES:
            raise WrongStageError(f"{path} records an unknown stage {stage!r}")
        return stage
    # Written before the stage was recorded: only the backbone stage stored "arch" without a
    # model config; only the DRAG stage stored a threshold beside one, and only its optimizer
    # has three parameter groups (backbone, CGL, head) where CGL pretraining's has one.
    if "model_config" not in extra:
        if "arch" in extra:
            return "finetune_backbone"
        raise WrongStageError(f"{path} is neither a DRAG nor a fine-tuned backbone checkpoint")
    if "threshold" in extra:
        return "drag"
    optimizer = payload.get("optimizer") or {}
    groups = len(optimizer.get("param_groups", []))
    if groups in (1, 3):
        return "drag" if groups == 3 else "pretrain_cgl"
    folder = _stage_folder(path)
    if folder is not None:
        return folder
    raise WrongStageError(
        f"{path} was written by an earlier version of this project without a stage record, and "
        "its contents fit both a CGL-pretraining and a DRAG checkpoint; put it back in its run "
        "folder (<run>/drag/checkpoints/ or <run>/pretrain_cgl/checkpoints/) or retrain"
    )


def suggested_path(path: str | Path, stage: str) -> str:
    """The file of ``stage`` in the same run as ``path`` (or the pattern when unknown)."""
    path = Path(path)
    if _stage_folder(path) is not None:
        return str(path.parent.parent.parent / stage / "checkpoints" / "best.pt")
    return f"<run>/{stage}/checkpoints/best.pt"


def require_stage(
    payload: Mapping[str, Any], path: str | Path, accepted: Sequence[str], tool: str
) -> str:
    """The checkpoint's stage; a :class:`WrongStageError` naming the right file otherwise."""
    stage = stage_of(payload, path)
    if stage in accepted:
        return stage
    wanted = " or ".join(DESCRIPTIONS[s] for s in accepted)
    raise WrongStageError(
        f"{path} is {DESCRIPTIONS[stage]}; {tool} needs {wanted}: use "
        f"{suggested_path(path, accepted[0])}"
    )


def stored_threshold(payload: Mapping[str, Any], path: str | Path) -> tuple[float | None, str]:
    """(validation-chosen threshold or None, a sentence saying where it comes from or why
    there is none)."""
    extra = payload.get("extra") or {}
    if extra.get("threshold") is not None:
        return float(extra["threshold"]), f"chosen on the validation split, stored in {path}"
    if extra.get("source") == AUTHORS_SOURCE:
        reason = "it was converted from the authors' notebook weights, which come without one"
    elif "stage" not in extra:
        reason = "it was written by an earlier version of this project that did not store one"
    else:
        reason = "its weights were never validated"
    return None, f"{path} stores no validation-chosen threshold ({reason})"
