"""Joint layouts of the common 2D detectors and how each maps onto Human3.6M-17.

Each layout's ``to_h36m`` gives, for every H36M joint, the detector joints whose mean it is; a
derived joint counts as missing whenever one of its sources is.  (Index in the detector's
order; R/L = the person's right/left.)

* COCO-17 (also the first 17 joints of COCO-WholeBody-133): pelvis = mid(hips 11, 12),
  thorax = mid(shoulders 5, 6), neck/nose = nose 0, head = mid(eyes 1, 2); R/L hip 12/11,
  knee 14/13, ankle 16/15, shoulder 6/5, elbow 8/7, wrist 10/9.
* Halpe-26 (AlphaPose): as COCO-17, but pelvis = Hip 19, thorax = Neck 18 and head = Head 17
  (the top of the head, as H36M's head joint).
* OpenPose BODY_25: pelvis = MidHip 8, thorax = Neck 1, neck/nose = Nose 0, head =
  mid(REye 15, LEye 16); R/L hip 9/12, knee 10/13, ankle 11/14, shoulder 2/5, elbow 3/6,
  wrist 4/7.
* OpenPose COCO-18: pelvis = mid(RHip 8, LHip 11), thorax = Neck 1, neck/nose = Nose 0,
  head = mid(REye 14, LEye 15); R/L hip 8/11, knee 9/12, ankle 10/13, shoulder 2/5,
  elbow 3/6, wrist 4/7.
* H36M-17: itself.

No detector has H36M's spine: it is the pelvis-thorax midpoint everywhere.  COCO and OpenPose
have no head-top joint, so the eye midpoint stands in (the synthetic demo data is drawn the
same way); the usual COCO -> H36M conversions make the same kind of approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glagcn.keypoints.errors import KeypointInputError
from glagcn.skeleton import H36M_17

H36M_SPINE, H36M_PELVIS, H36M_THORAX = (H36M_17.joint(n) for n in ("spine", "pelvis", "thorax"))

COCO17_JOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
HALPE26_JOINTS = COCO17_JOINTS + (
    "head",
    "neck",
    "hip",
    "left_big_toe",
    "right_big_toe",
    "left_small_toe",
    "right_small_toe",
    "left_heel",
    "right_heel",
)
BODY25_JOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "mid_hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
COCO18_JOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
WHOLEBODY133_JOINTS = COCO17_JOINTS + tuple(
    f"{part}_{i}"
    for part, count in (("foot", 6), ("face", 68), ("left_hand", 21), ("right_hand", 21))
    for i in range(count)
)
H36M17_JOINTS = H36M_17.joint_names  # the lifter's own order: input already in it


@dataclass(frozen=True)
class JointLayout:
    name: str
    title: str
    joint_names: tuple[str, ...]
    to_h36m: tuple[tuple[int, ...], ...]  # per H36M joint: the source joints averaged

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def used_joints(self) -> tuple[int, ...]:
        """Source joints that some H36M joint is made from (others never matter)."""
        return tuple(sorted({j for sources in self.to_h36m for j in sources}))


def _to_h36m(
    joint_names: tuple[str, ...], **derived: str | tuple[str, ...]
) -> tuple[tuple[int, ...], ...]:
    """Per H36M joint (in the skeleton's order), the indices of the detector joints averaged
    into it.  Limb joints have the same name in every layout; ``derived`` names the sources of
    the joints each layout makes its own way (pelvis, thorax, neck_nose, head).  The spine has
    no source: :func:`to_h36m` makes it from pelvis and thorax."""
    table = []
    for h36m_joint in H36M17_JOINTS:
        if h36m_joint == "spine":
            table.append(())
            continue
        sources = derived.get(h36m_joint, h36m_joint)
        names = (sources,) if isinstance(sources, str) else sources
        table.append(tuple(joint_names.index(name) for name in names))
    return tuple(table)


_COCO_TO_H36M = _to_h36m(
    COCO17_JOINTS,
    pelvis=("left_hip", "right_hip"),
    thorax=("left_shoulder", "right_shoulder"),
    neck_nose="nose",
    head=("left_eye", "right_eye"),
)

LAYOUTS: dict[str, JointLayout] = {
    layout.name: layout
    for layout in (
        JointLayout("h36m17", "Human3.6M-17", H36M17_JOINTS, tuple((j,) for j in range(17))),
        JointLayout("coco17", "COCO-17", COCO17_JOINTS, _COCO_TO_H36M),
        JointLayout(
            "halpe26",
            "Halpe-26",
            HALPE26_JOINTS,
            _to_h36m(HALPE26_JOINTS, pelvis="hip", thorax="neck", neck_nose="nose", head="head"),
        ),
        JointLayout(
            "body25",
            "OpenPose BODY_25",
            BODY25_JOINTS,
            _to_h36m(
                BODY25_JOINTS,
                pelvis="mid_hip",
                thorax="neck",
                neck_nose="nose",
                head=("right_eye", "left_eye"),
            ),
        ),
        JointLayout(
            "coco18",
            "OpenPose COCO-18",
            COCO18_JOINTS,
            _to_h36m(
                COCO18_JOINTS,
                pelvis=("right_hip", "left_hip"),
                thorax="neck",
                neck_nose="nose",
                head=("right_eye", "left_eye"),
            ),
        ),
        JointLayout("wholebody133", "COCO-WholeBody-133", WHOLEBODY133_JOINTS, _COCO_TO_H36M),
    )
}


def get_layout(name: str) -> JointLayout:
    if name not in LAYOUTS:
        raise KeypointInputError(f"unknown joint layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def to_h36m(
    layout: JointLayout, keypoints: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (..., J, 2) and scores (..., J) of ``layout`` -> H36M-17 (..., 17, 2/..., 17).

    A derived joint is the mean of its sources and takes the lowest of their scores, so it is
    missing whenever one of its sources is.  The spine is the pelvis-thorax midpoint.
    """
    keypoints = np.asarray(keypoints)
    scores = np.asarray(scores)
    out_kp = np.empty(keypoints.shape[:-2] + (17, 2), dtype=keypoints.dtype)
    out_sc = np.empty(scores.shape[:-1] + (17,), dtype=scores.dtype)
    for target, sources in enumerate(layout.to_h36m):
        if not sources:  # the spine, made below
            continue
        out_kp[..., target, :] = keypoints[..., list(sources), :].mean(axis=-2)
        out_sc[..., target] = scores[..., list(sources)].min(axis=-1)
    if not layout.to_h36m[H36M_SPINE]:  # no detector has H36M's spine
        out_kp[..., H36M_SPINE, :] = 0.5 * (
            out_kp[..., H36M_PELVIS, :] + out_kp[..., H36M_THORAX, :]
        )
        out_sc[..., H36M_SPINE] = np.minimum(out_sc[..., H36M_PELVIS], out_sc[..., H36M_THORAX])
    return out_kp, out_sc


def layout_for_joint_count(count: int, candidates: tuple[str, ...]) -> str | None:
    """The first layout of ``candidates`` with ``count`` joints."""
    for name in candidates:
        if LAYOUTS[name].num_joints == count:
            return name
    return None
