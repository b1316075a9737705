"""Which stage of the recipe wrote a checkpoint, and which decision threshold comes with it.

Every checkpoint DRAG writes records ``extra["stage"]``; a file without one is not DRAG's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drag.errors import WrongStageError
from trilab.run_files import BEST_CHECKPOINT, CHECKPOINT_DIR, checkpoint_dir

CHECKPOINT_STAGES = ("finetune_backbone", "pretrain_cgl", "drag")
DESCRIPTIONS = {
    "finetune_backbone": "a fine-tuned backbone (the baseline classifier)",
    "pretrain_cgl": "a CGL-pretraining checkpoint (its graph and classifier are untrained)",
    "drag": "a finished DRAG model",
}
AUTHORS_SOURCE = "authors_notebooks"  # extra["source"] of converted notebook weights


def _stage_folder(path: Path) -> str | None:
    """``<run>/<stage>/checkpoints/x.pt`` -> stage."""
    if path.parent.name == CHECKPOINT_DIR and path.parent.parent.name in CHECKPOINT_STAGES:
        return path.parent.parent.name
    return None


def _what_else(extra: Mapping[str, Any]) -> str:
    if "skeleton" in extra and "model_config" in extra:
        return "a GLA-GCN checkpoint (glagcn/), not a DRAG one"
    return "not a checkpoint written by DRAG's training (it records no stage)"


def stage_of(payload: Mapping[str, Any], path: str | Path) -> str:
    """The stage that wrote ``payload`` (loaded from ``path``)."""
    path = Path(path)
    extra = payload.get("extra") or {}
    stage = extra.get("stage") if isinstance(extra, Mapping) else None
    if stage is None:
        raise WrongStageError(
            f"{path} is {_what_else(extra if isinstance(extra, Mapping) else {})}"
        )
    if stage not in CHECKPOINT_STAGES:
        raise WrongStageError(f"{path} records an unknown stage {stage!r}")
    return stage


def suggested_path(path: str | Path, stage: str) -> str:
    """The file of ``stage`` in the same run as ``path`` (or the pattern when unknown)."""
    path = Path(path)
    if _stage_folder(path) is not None:
        return str(checkpoint_dir(path.parent.parent.parent / stage) / BEST_CHECKPOINT)
    return f"<run>/{stage}/{CHECKPOINT_DIR}/{BEST_CHECKPOINT}"


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
    else:
        reason = "its weights were never validated"
    return None, f"{path} stores no validation-chosen threshold ({reason})"
