"""What a model takes in when it is not its own skeleton's joints, and which graph it uses.

The authors' HumanEva-I model for detected 2D (``common/s_agcn_HE_13.py``, run by
``run_s-agcn_HE_13.py``) differs from their main model (``common/s_agcn.py``) in three ways, each
selectable here so that a converted checkpoint computes what theirs computes:

* input: COCO-17 keypoints (the Mask R-CNN detections), turned into the 15 HumanEva-I joints
  inside the model: pelvis = mid-hips, thorax = mid-shoulders, the limbs' COCO joints, head =
  nose (``s_agcn_HE_13.py:140-158``);
* no input BatchNorm: ``data_bn`` is built but never applied (``:160``);
* graph: 12 inward pairs, without (2,6) and (1,9) of the 14 of ``agcn.py``
  (``agcn_HE_13.py:37-38``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from glagcn.skeleton import Skeleton

INPUT_LAYOUTS = ("skeleton", "coco17")
GRAPHS = ("skeleton", "he13")

# COCO-17: 0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders, 7/8 elbows, 9/10 wrists, 11/12 hips,
# 13/14 knees, 15/16 ankles; odd = left, even = right (VideoPose3D's keypoints_symmetry).
COCO17_LEFT = (1, 3, 5, 7, 9, 11, 13, 15)
COCO17_RIGHT = (2, 4, 6, 8, 10, 12, 14, 16)

# HumanEva-I joint j <- COCO joint HE13_FROM_COCO[j] for j = 2..13, in the order of the
# humaneva15 skeleton (shoulder, elbow, wrist left then right; hip, knee, ankle left then right).
HE13_LIMBS_FROM_COCO = (5, 7, 9, 6, 8, 10, 11, 13, 15, 12, 14, 16)
HE13_HEAD_FROM_COCO = 0  # nose
HE13_PELVIS_FROM_COCO = (11, 12)  # mid-hips
HE13_THORAX_FROM_COCO = (5, 6)  # mid-shoulders

# agcn_HE_13.py's inward pairs, 1-based as they list them.
HE13_INWARD_1BASED = (
    (15, 2),
    (3, 4),
    (4, 5),
    (2, 3),
    (6, 7),
    (7, 8),
    (2, 1),
    (1, 12),
    (12, 13),
    (13, 14),
    (9, 10),
    (10, 11),
)


def input_joint_count(skeleton: Skeleton, input_layout: str) -> int:
    check_input_layout(skeleton, input_layout)
    return 17 if input_layout == "coco17" else skeleton.num_joints


def check_input_layout(skeleton: Skeleton, input_layout: str) -> None:
    if input_layout not in INPUT_LAYOUTS:
        raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, got {input_layout!r}")
    if input_layout == "coco17" and skeleton.name != "humaneva15":
        raise ValueError(
            "input_layout='coco17' is the authors' HE_13 mapping to the humaneva15 skeleton, "
            f"not to {skeleton.name!r}"
        )


def input_flip_permutation(skeleton: Skeleton, input_layout: str) -> np.ndarray:
    """Joint order of the model's 2D input after a horizontal flip."""
    if input_layout != "coco17":
        return skeleton.flip_permutation()
    permutation = np.arange(17)
    permutation[list(COCO17_LEFT)] = COCO17_RIGHT
    permutation[list(COCO17_RIGHT)] = COCO17_LEFT
    return permutation


def coco17_to_humaneva15(keypoints: torch.Tensor) -> torch.Tensor:
    """(..., 17, C) COCO-17 -> (..., 15, C) HumanEva-I, as s_agcn_HE_13.py maps them."""
    pelvis = (keypoints[..., 11, :] + keypoints[..., 12, :]) / 2
    thorax = (keypoints[..., 5, :] + keypoints[..., 6, :]) / 2
    limbs = keypoints[..., list(HE13_LIMBS_FROM_COCO), :]
    head = keypoints[..., HE13_HEAD_FROM_COCO, :]
    return torch.cat(
        [pelvis.unsqueeze(-2), thorax.unsqueeze(-2), limbs, head.unsqueeze(-2)], dim=-2
    )


def graph_adjacency(skeleton: Skeleton, graph: str) -> np.ndarray:
    """The (3, V, V) adjacency subsets of the skeleton's own graph or of the HE_13 graph."""
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    if graph == "he13":
        if skeleton.name != "humaneva15":
            raise ValueError(f"graph='he13' is a humaneva15 graph, not {skeleton.name!r}'s")
        pairs = tuple((i - 1, j - 1) for i, j in HE13_INWARD_1BASED)
        skeleton = replace(skeleton, graph_inward=pairs)
    return skeleton.adjacency_subsets()
