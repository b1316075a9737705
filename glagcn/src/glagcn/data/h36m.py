"""Human3.6M in the VideoPose3D npz formats.

* ``data_3d_h36m.npz``: key ``positions_3d`` -> {subject: {action: (T, 32, 3)}} world
  coordinates in metres (the 32 mocap joints).
* ``data_2d_h36m_<source>.npz``: key ``positions_2d`` -> {subject: {action: [4 x (T, 17, 2)]}}
  pixels, one array per camera; key ``metadata`` -> {layout_name, num_joints,
  keypoints_symmetry}.

The 17 joints are the 32 minus ``joints_removed_to_get_17`` of the calibration file.  3D poses
go world -> each camera -> root-relative; 2D is normalised by that camera's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glagcn.camera import (
    _calibration,
    h36m_cameras,
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

# VideoPose3D's preparation script drops this one take (its video is corrupt), so the released
# files never hold it; a file that does (made by another tool) gets the same treatment, said aloud.
CORRUPT_TAKE = ("S11", "Directions")


def kept_joints_of_32() -> np.ndarray:
    removed = set(_calibration()["joints_removed_to_get_17"])
    return np.array([j for j in range(32) if j not in removed])


def load_h36m(
    path_3d: str | Path,
    path_2d: str | Path,
    subjects: Sequence[str],
    actions: Sequence[str] | None = None,
    downsample: int = 1,
    skip_corrupt_take: bool = True,
    notes: list[str] | None = None,
) -> list[PoseSequence]:
    """Every camera of every take the files hold for ``subjects`` (in the files' order).

    The one exception is the take named exactly ``S11 "Directions"`` (see ``CORRUPT_TAKE``),
    skipped when ``skip_corrupt_take``; a line saying so goes into ``notes``.
    """
    path_3d, path_2d = Path(path_3d), Path(path_2d)
    positions_3d = load_npz_dict(path_3d, "positions_3d")
    positions_2d = load_npz_dict(path_2d, "positions_2d")
    metadata = load_npz_dict(path_2d, "metadata")
    if int(metadata.get("num_joints", 17)) != 17:
        raise DataError(
            f"{path_2d}: metadata num_joints={metadata.get('num_joints')}, "
            "expected 17 (H36M layout)"
        )
    kept = kept_joints_of_32()
    sequences = []
    for subject in subjects:
        require_subject(subject, (path_3d, positions_3d), (path_2d, positions_2d))
        cameras = h36m_cameras(subject)
        for action in select_actions(list(positions_3d[subject]), actions):
            if skip_corrupt_take and (subject, action) == CORRUPT_TAKE:
                if notes is not None:
                    notes.append(
                        f"{path_3d}: skipped {subject} {action!r} (all cameras), the "
                        "take VideoPose3D's preparation drops as corrupt; "
                        "data.skip_corrupt_take=false keeps it"
                    )
                continue
            if action not in positions_2d[subject]:
                raise DataError(f"{path_2d}: {subject}/{action} has no 2D keypoints")
            world = np.asarray(positions_3d[subject][action])
            if world.ndim != 3 or world.shape[1:] not in ((32, 3), (17, 3)):
                raise DataError(
                    f"{path_3d}: {subject}/{action} has shape {world.shape}, "
                    "expected (frames, 32, 3)"
                )
            world = world[:, kept] if world.shape[1] == 32 else world
            world = check_array(world, path_3d, f"{subject}/{action}", 17, 3)
            views = positions_2d[subject][action]
            if len(views) != len(cameras):
                raise DataError(
                    f"{path_2d}: {subject}/{action} has {len(views)} camera "
                    f"arrays, expected {len(cameras)}"
                )
            for index, (camera, view) in enumerate(zip(cameras, views, strict=True)):
                pixels = check_array(view, path_2d, f"{subject}/{action}/camera {index}", 17, 2)
                frames = mocap_frames(pixels, world, path_2d, f"{subject}/{action}/camera {index}")
                poses = world_to_camera(
                    world[:frames].astype(np.float64), camera.orientation, camera.translation
                )
                keypoints = normalize_screen_coordinates(
                    pixels[:frames], camera.res_w, camera.res_h
                )
                sequences.append(
                    PoseSequence(
                        subject,
                        action,
                        index,
                        np.ascontiguousarray(keypoints[::downsample], dtype=np.float32),
                        np.ascontiguousarray(root_relative(poses)[::downsample], dtype=np.float32),
                    )
                )
    if not sequences:
        raise DataError(
            f"{path_3d}: no sequences for subjects {list(subjects)} and actions {actions}"
        )
    return sequences


def write_h36m_npz(
    out_dir: str | Path, positions_3d_world: dict, positions_2d: dict, source: str = "gt"
) -> tuple[Path, Path]:
    """Write the two files exactly as VideoPose3D's preparation scripts lay them out."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path_3d = out_dir / "data_3d_h36m.npz"
    path_2d = out_dir / f"data_2d_h36m_{source}.npz"
    np.savez_compressed(path_3d, positions_3d=positions_3d_world)
    metadata = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    }
    np.savez_compressed(path_2d, positions_2d=positions_2d, metadata=metadata)
    return path_3d, path_2d
