"""MPI-INF-3DHP in the preprocessed npz form used by the lifting codebases.

* ``data_test_3dhp.npz``: key ``data`` -> {"TS1".."TS6": {"data_2d": (T, 17, 2) pixels,
  "data_3d": (T, 17, 3) millimetres (universal skeleton, camera space), "valid": (T,) 0/1}}.
  Image size 2048x2048 for TS1-TS4, 1920x1080 for TS5-TS6 (a ``res`` entry (w, h) overrides).
* ``data_train_3dhp.npz``: key ``data`` -> {"S1 Seq1": [{camera: {"data_2d", "data_3d"}}]}: a
  one-element list holding a dict from camera ("0", "1", ...) to that camera's arrays, as the
  lifting codebases' preparation writes it; 2048x2048 images.

Joints are in the 3DHP 17-joint order (root = pelvis, index 14); 3D goes to metres,
root-relative.  Test frames with ``valid == 0`` are kept for windows but not scored (the
authors' test generator only centres windows on valid frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glagcn.camera import normalize_screen_coordinates, root_relative
from glagcn.data.sequences import DataError, PoseSequence, check_array, load_npz_dict
from glagcn.skeleton import MPI_INF_3DHP_17

TEST_RESOLUTION = {
    "TS1": (2048, 2048),
    "TS2": (2048, 2048),
    "TS3": (2048, 2048),
    "TS4": (2048, 2048),
    "TS5": (1920, 1080),
    "TS6": (1920, 1080),
}
TRAIN_RESOLUTION = (2048, 2048)


def _sequence(path: Path, name: str, camera: int, entry, resolution, downsample: int):
    if not isinstance(entry, dict):
        raise DataError(f"{path}: {name} must be a dict with data_2d/data_3d")
    for key in ("data_2d", "data_3d"):
        if key not in entry:
            raise DataError(f"{path}: {name} has no {key!r}")
    width, height = entry.get("res", resolution)
    pixels = check_array(entry["data_2d"], path, f"{name}/data_2d", 17, 2)
    poses = check_array(entry["data_3d"], path, f"{name}/data_3d", 17, 3) / 1000.0
    frames = min(len(pixels), len(poses))
    valid = (
        np.asarray(entry["valid"], dtype=bool).reshape(-1)[:frames] if "valid" in entry else None
    )
    return PoseSequence(
        name.split(" ")[0],
        name,
        camera,
        np.ascontiguousarray(
            normalize_screen_coordinates(pixels[:frames], int(width), int(height))[::downsample]
        ),
        np.ascontiguousarray(root_relative(poses[:frames], MPI_INF_3DHP_17.root)[::downsample]),
        None if valid is None else valid[::downsample],
    )


def _train_cameras(path: Path, name: str, value) -> list[tuple[int, dict]]:
    """(camera number, arrays) of one training sequence's ``[{camera: arrays}]`` entry."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
        raise DataError(
            f"{path}: {name} must be a list holding a dict from camera to "
            f"{{'data_2d', 'data_3d'}}, found {type(value).__name__}"
        )
    cameras = []
    for group in value:
        for key, entry in group.items():
            try:
                number = int(key)
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}: {name} has camera key {key!r}; expected a camera "
                    "number such as '0' or 8"
                ) from None
            cameras.append((number, entry))
    return cameras


def load_3dhp(path: str | Path, split: str, downsample: int = 1) -> list[PoseSequence]:
    path = Path(path)
    data = load_npz_dict(path, "data")
    sequences = []
    for name in sorted(data):
        if split == "test":
            resolution = TEST_RESOLUTION.get(name, TRAIN_RESOLUTION)
            sequences.append(_sequence(path, name, -1, data[name], resolution, downsample))
        elif split == "train":
            for camera, entry in _train_cameras(path, name, data[name]):
                sequences.append(
                    _sequence(path, f"{name}", camera, entry, TRAIN_RESOLUTION, downsample)
                )
        else:
            raise DataError(f"unknown 3DHP split {split!r}: expected train or test")
    if not sequences:
        raise DataError(f"{path}: key 'data' holds no sequences")
    return sequences
