"""HumanEva-I, 15 joints, in the VideoPose3D nesting with camera-space 3D.

* ``data_3d_humaneva15.npz``: key ``positions_3d`` -> {subject: {action: [per camera (T, 15, 3)]}}
  in **camera coordinates, metres** (HumanEva's calibration is not public in a standard file, so
  users convert world -> camera with their copy of the calibration once; a single array instead
  of a list is taken as one camera).
* ``data_2d_humaneva15_<source>.npz``: key ``positions_2d`` -> {subject: {action: [per camera
  (T, 15, 2)]}} pixels of the 640x480 videos; optional key ``metadata`` with ``res_w``/``res_h``.

Subjects are named ``Train/S1``, ``Validate/S1``...; actions are chunked (``Walk 1 chunk0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glagcn.camera import normalize_screen_coordinates, root_relative
from glagcn.data.sequences import (
    DataError,
    PoseSequence,
    check_array,
    load_npz_dict,
    require_subject,
    select_actions,
)

HUMANEVA_RESOLUTION = (640, 480)


def _views(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_humaneva(path_3d: str | Path, path_2d: str | Path, subjects: Sequence[str],
                  actions: Sequence[str] | None = None, downsample: int = 1) -> list[PoseSequence]:
    path_3d, path_2d = Path(path_3d), Path(path_2d)
    positions_3d = load_npz_dict(path_3d, "positions_3d")
    positions_2d = load_npz_dict(path_2d, "positions_2d")
    try:
        metadata = load_npz_dict(path_2d, "metadata")
    except DataError:
        metadata = {}
    width = int(metadata.get("res_w", HUMANEVA_RESOLUTION[0]))
    height = int(metadata.get("res_h", HUMANEVA_RESOLUTION[1]))
    sequences = []
    for subject in subjects:
        require_subject(subject, (path_3d, positions_3d), (path_2d, positions_2d))
        for action in select_actions(sorted(positions_3d[subject]), actions):
            if action not in positions_2d[subject]:
                raise DataError(f"{path_2d}: {subject}/{action} has no 2D keypoints")
            views_3d = _views(positions_3d[subject][action])
            views_2d = _views(positions_2d[subject][action])
            if len(views_3d) != len(views_2d):
                raise DataError(f"{path_2d}: {subject}/{action} has {len(views_2d)} 2D views "
                                f"but {path_3d} has {len(views_3d)}")
            for camera, (poses, pixels) in enumerate(zip(views_3d, views_2d, strict=True)):
                where = f"{subject}/{action}/camera {camera}"
                poses = check_array(poses, path_3d, where, 15, 3)
                pixels = check_array(pixels, path_2d, where, 15, 2)
                frames = min(len(poses), len(pixels))
                sequences.append(PoseSequence(
                    subject, action, camera,
                    np.ascontiguousarray(normalize_screen_coordinates(
                        pixels[:frames], width, height)[::downsample], dtype=np.float32),
                    np.ascontiguousarray(root_relative(poses[:frames])[::downsample],
                                         dtype=np.float32),
                ))
    if not sequences:
        raise DataError(f"{path_3d}: no sequences for {list(subjects)} / {actions}")
    return sequences
