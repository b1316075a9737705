"""People for the keypoint tests: a standing COCO-17 pose and its OpenPose rendering.

Shared by the keypoint format, track and in-the-wild predict tests (imported as a plain module:
the tests run with ``--import-mode=prepend``, which puts this folder on ``sys.path``).  The
OpenPose joint tables are written from OpenPose's ``doc/output.md`` (BODY_25 and COCO-18 orders),
not from ``glagcn.keypoints.layouts``, so a reader's mapping is checked against them.
"""

from __future__ import annotations

import numpy as np

# A standing person in COCO-17 order, pixels (x, y) in a 1280 x 720 frame, about 300 px tall.
STANDING_COCO_POSE = np.array(
    [
        [640, 200],
        [650, 190],
        [630, 190],
        [660, 195],
        [620, 195],
        [680, 250],
        [600, 250],
        [700, 310],
        [580, 310],
        [710, 370],
        [570, 370],
        [665, 380],
        [615, 380],
        [668, 450],
        [612, 450],
        [670, 520],
        [610, 520],
    ],
    dtype=np.float64,
)

# OpenPose BODY_25 joint -> COCO-17 joint it copies (neck 1 and mid-hip 8 are midpoints).
BODY25_FROM_COCO = {
    0: 0,
    2: 6,
    3: 8,
    4: 10,
    5: 5,
    6: 7,
    7: 9,
    9: 12,
    10: 14,
    11: 16,
    12: 11,
    13: 13,
    14: 15,
    15: 2,
    16: 1,
    17: 4,
    18: 3,
}
# OpenPose COCO-18 joint -> COCO-17 joint: BODY_25's order without its mid-hip (8) and foot
# points (19-24), so BODY_25 joints 9-18 are COCO-18's 8-17 (neck 1 is again a midpoint).
COCO18_FROM_COCO = {body25 - (body25 > 8): coco for body25, coco in BODY25_FROM_COCO.items()}


def coco_to_openpose(keypoints: np.ndarray, scores: np.ndarray, joints: int) -> np.ndarray:
    """(T, 17, 2) COCO pixels and (T, 17) scores -> (T, joints, 3) rows of OpenPose's
    ``pose_keypoints_2d`` (x, y, confidence) for BODY_25 (``joints=25``) or COCO-18."""
    table = BODY25_FROM_COCO if joints == 25 else COCO18_FROM_COCO
    out = np.zeros(keypoints.shape[:1] + (joints, 3))
    for target, source in table.items():
        out[:, target, :2], out[:, target, 2] = keypoints[:, source], scores[:, source]
    out[:, 1, :2] = keypoints[:, [5, 6]].mean(1)
    out[:, 1, 2] = 0.8
    if joints == 25:
        out[:, 8, :2] = keypoints[:, [11, 12]].mean(1)
        out[:, 8, 2] = 0.7
        out[:, 19:25, :2] = np.repeat(keypoints[:, [15, 16]], 3, axis=1) + 10
        out[:, 19:25, 2] = 0.6
    return out
