"""The in-memory form every loader produces: one 2D/3D sequence per subject, action, camera."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trilab.errors import UserError
from trilab.safe_load import load_npz


class DataError(UserError, ValueError):
    """A dataset file is missing or malformed; the message names the file and the key."""


@dataclass
class PoseSequence:
    subject: str
    action: str
    camera: int  # camera index, -1 where not applicable
    keypoints_2d: np.ndarray  # (T, J, 2) float32, screen-normalised: x/w*2-1, y/w*2-h/w
    poses_3d: np.ndarray | None  # (T, J, 3) float32, camera coordinates, metres, root at 0
    valid: np.ndarray | None = None  # (T,) bool: frames with usable ground truth (3DHP)


def load_npz_dict(path: Path, key: str) -> dict:
    """A pickled dict stored under ``key`` of an npz file (the VideoPose3D convention).

    The pickle is decoded as data only (arrays, dicts, lists, strings, numbers): a file that
    asks for anything else is refused (:class:`trilab.safe_load.UnsafeFileError`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    archive = load_npz(path)
    if key not in archive:
        raise DataError(f"{path}: missing key {key!r} (found {sorted(archive)})")
    value = archive[key]
    if value.dtype == object and value.shape == ():
        value = value.item()
    if not isinstance(value, dict):
        raise DataError(f"{path}: key {key!r} must hold a dict, found {type(value).__name__}")
    return value


def check_array(array, path: Path, where: str, joints: int, dims: int) -> np.ndarray:
    """(T, joints, dims) float32 with finite values, else a DataError naming file and key."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[1] != joints or array.shape[2] != dims:
        raise DataError(
            f"{path}: {where} has shape {array.shape}, expected (frames, {joints}, {dims})"
        )
    array = array.astype(np.float32, copy=False)
    bad = ~np.isfinite(array).all(axis=(1, 2))
    if bad.any():
        raise DataError(
            f"{path}: {where} has NaN/inf values in {int(bad.sum())} frames "
            f"(first: frame {int(np.argmax(bad))})"
        )
    return array


def mocap_frames(keypoints_2d: np.ndarray, poses_3d: np.ndarray, path_2d: Path, where: str) -> int:
    """Frames to use: the mocap's.  Some videos run a few frames past the mocap and their 2D is
    cut to it (as VideoPose3D does); 2D shorter than the mocap means mismatched files."""
    if len(keypoints_2d) < len(poses_3d):
        raise DataError(
            f"{path_2d}: {where} has {len(keypoints_2d)} frames of 2D keypoints but "
            f"the 3D file has {len(poses_3d)}: the two files do not belong together"
        )
    return len(poses_3d)


def select_actions(names, prefixes) -> list[str]:
    """Action names that start with one of ``prefixes`` (all when ``prefixes`` is None)."""
    if not prefixes:
        return list(names)
    return [n for n in names if any(n.split(" ")[0] == p or n.startswith(p) for p in prefixes)]


def require_subject(subject: str, *tables: tuple[Path, dict]) -> None:
    """Raise a DataError naming the file when ``subject`` is missing from one of the tables."""
    for path, table in tables:
        if subject not in table:
            raise DataError(f"{path}: subject {subject!r} not in the file (found {sorted(table)})")
