"""HumanEva-I, 15 joints, in the VideoPose3D format (``prepare_data_humaneva.py``).

* ``data_3d_humaneva15.npz``: key ``positions_3d`` -> {subject: {take: (T, 15, 3)}} **world**
  coordinates in metres, one array per take; it is seen by cameras C1-C3 through the public
  HumanEva-I extrinsics (``humaneva_cameras.json``), then made root-relative.
* ``data_2d_humaneva15_<source>.npz``: key ``positions_2d`` -> {subject: {take: [3 x (T, 15, 2)]}}
  pixels of the 640x480 videos, one array per camera; key ``metadata`` (``layout_name``,
  ``num_joints``, ``keypoints_symmetry``; ``res_w``/``res_h`` are read when present).  The
  ground-truth file has the 15 HumanEva-I joints; the Mask R-CNN detections
  (``detectron_pt_coco``) have COCO's 17 (``num_joints: 17``), which only a model that maps them
  itself takes (the authors' HE_13 model, ``model.input_layout=coco17``).

Subjects are named ``Train/S1``, ``Validate/S1``...; takes are the mocap's contiguous valid
stretches (``Walking 1 chunk0``, ``Jog 1 chunk1``), grouped into actions by the first word.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glagcn.camera import (
    humaneva_extrinsics,
    normalize_screen_coordinates,
    root_relative,
    world_to_camera,
)
from glagcn.data.sequences import (
    DataError,
    PoseSequence,
    check_array,
    load_npz_dict,
    mocap_frames,
    require_subject,
    select_actions,
)

HUMANEVA_RESOLUTION = (640, 480)


def load_humaneva(
    path_3d: str | Path,
    path_2d: str | Path,
    subjects: Sequence[str],
    actions: Sequence[str] | None = None,
    downsample: int = 1,
) -> list[PoseSequence]:
    path_3d, path_2d = Path(path_3d), Path(path_2d)
    positions_3d = load_npz_dict(path_3d, "positions_3d")
    positions_2d = load_npz_dict(path_2d, "positions_2d")
    try:
        metadata = load_npz_dict(path_2d, "metadata")
    except DataError:
        metadata = {}
    keypoint_joints = int(metadata.get("num_joints", 15))
    if keypoint_joints not in (15, 17):
        raise DataError(
            f"{path_2d}: metadata num_joints = {keypoint_joints}; expected 15 (HumanEva-I "
            "joints) or 17 (COCO-17 detections)"
        )
    width = int(metadata.get("res_w", HUMANEVA_RESOLUTION[0]))
    height = int(metadata.get("res_h", HUMANEVA_RESOLUTION[1]))
    sequences = []
    for subject in subjects:
        require_subject(subject, (path_3d, positions_3d), (path_2d, positions_2d))
        try:
            cameras = humaneva_extrinsics(subject)
        except KeyError as error:
            raise DataError(f"{path_3d}: {error.args[0]}") from None
        for action in select_actions(list(positions_3d[subject]), actions):
            if action not in positions_2d[subject]:
                raise DataError(f"{path_2d}: {subject}/{action} has no 2D keypoints")
            world = positions_3d[subject][action]
            if isinstance(world, (list, tuple)):
                raise DataError(
                    f"{path_3d}: {subject}/{action} holds a list of {len(world)} "
                    "arrays; VideoPose3D's HumanEva-I file has one (frames, 15, 3) "
                    "world-coordinate array per take"
                )
            world = check_array(world, path_3d, f"{subject}/{action}", 15, 3).astype(np.float64)
            views = positions_2d[subject][action]
            if not isinstance(views, (list, tuple)) or len(views) != len(cameras):
                count = len(views) if isinstance(views, (list, tuple)) else "not a list of"
                raise DataError(
                    f"{path_2d}: {subject}/{action} has {count} camera arrays, "
                    f"expected a list of {len(cameras)} (C1-C3)"
                )
            for camera, ((orientation, translation), view) in enumerate(
                zip(cameras, views, strict=True)
            ):
                where = f"{subject}/{action}/camera {camera}"
                pixels = check_array(view, path_2d, where, keypoint_joints, 2)
                frames = mocap_frames(pixels, world, path_2d, where)
                poses = world_to_camera(world[:frames], orientation, translation)
                sequences.append(
                    PoseSequence(
                        subject,
                        action,
                        camera,
                        np.ascontiguousarray(
                            normalize_screen_coordinates(pixels[:frames], width, height)[
                                ::downsample
                            ],
                            dtype=np.float32,
                        ),
                        np.ascontiguousarray(root_relative(poses)[::downsample], dtype=np.float32),
                    )
                )
    if not sequences:
        raise DataError(f"{path_3d}: no sequences for {list(subjects)} / {actions}")
    return sequences
