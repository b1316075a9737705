"""Human3.6M and HumanEva-I cameras and the coordinate transforms of the lifting pipeline.

World (mm in the calibration file, metres here) -> camera coordinates -> root-relative pose;
pixels -> screen coordinates normalised by the image width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")


@dataclass(frozen=True)
class Camera:
    id: str
    center: np.ndarray  # (2,) pixels
    focal_length: np.ndarray  # (2,) pixels
    radial_distortion: np.ndarray  # (3,) k1..k3
    tangential_distortion: np.ndarray  # (2,) p1, p2
    res_w: int
    res_h: int
    orientation: np.ndarray  # (4,) unit quaternion w, x, y, z: camera -> world rotation
    translation: np.ndarray  # (3,) camera centre in world coordinates, metres


@lru_cache(maxsize=1)
def _calibration() -> dict:
    text = resources.files("glagcn.data").joinpath("h36m_cameras.json").read_text()
    return json.loads(text)


def h36m_cameras(subject: str) -> list[Camera]:
    """The 4 calibrated cameras of a Human3.6M subject, in the dataset's camera order."""
    calibration = _calibration()
    if subject not in calibration["extrinsics"]:
        raise KeyError(
            f"no camera calibration for subject {subject!r}; "
            f"known: {sorted(calibration['extrinsics'])}"
        )
    cameras = []
    for intrinsic, extrinsic in zip(
        calibration["intrinsics"], calibration["extrinsics"][subject], strict=True
    ):
        cameras.append(
            Camera(
                id=intrinsic["id"],
                center=np.asarray(intrinsic["center"], dtype=np.float64),
                focal_length=np.asarray(intrinsic["focal_length"], dtype=np.float64),
                radial_distortion=np.asarray(intrinsic["radial_distortion"], dtype=np.float64),
                tangential_distortion=np.asarray(
                    intrinsic["tangential_distortion"], dtype=np.float64
                ),
                res_w=int(intrinsic["res_w"]),
                res_h=int(intrinsic["res_h"]),
                orientation=np.asarray(extrinsic["orientation"], dtype=np.float64),
                translation=np.asarray(extrinsic["translation"], dtype=np.float64) / 1000.0,
            )
        )
    return cameras


@lru_cache(maxsize=1)
def _humaneva_calibration() -> dict:
    text = resources.files("glagcn.data").joinpath("humaneva_cameras.json").read_text()
    return json.loads(text)


def humaneva_extrinsics(subject: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(orientation, translation in metres) of cameras C1-C3 for a HumanEva-I subject; the
    files' subject names carry a split prefix (``Validate/S1``) that shares S1's calibration."""
    calibration = _humaneva_calibration()["extrinsics"]
    name = subject.rsplit("/", 1)[-1]
    if name not in calibration:
        raise KeyError(
            f"no HumanEva-I camera calibration for subject {subject!r}; "
            f"known: {sorted(calibration)}"
        )
    return [
        (
            np.asarray(c["orientation"], dtype=np.float64),
            np.asarray(c["translation"], dtype=np.float64) / 1000.0,
        )
        for c in calibration[name]
    ]


def h36m_subjects_with_cameras() -> list[str]:
    return sorted(_calibration()["extrinsics"])


def quaternion_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by the unit quaternion ``q`` = (w, x, y, z)."""
    w, axis = q[0], np.asarray(q[1:])
    uv = np.cross(axis, v)
    uuv = np.cross(axis, uv)
    return v + 2.0 * (w * uv + uuv)


def quaternion_inverse(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[:1], -np.asarray(q[1:])])


def world_to_camera(
    points: np.ndarray, orientation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    return quaternion_rotate(quaternion_inverse(orientation), points - translation)


def camera_to_world(
    points: np.ndarray, orientation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    return quaternion_rotate(orientation, points) + translation


def root_relative(poses: np.ndarray, root: int = 0) -> np.ndarray:
    """Subtract the root joint from every joint (the root becomes the origin)."""
    return poses - poses[..., root : root + 1, :]


def project_to_pixels(
    points_camera: np.ndarray, camera: Camera, distortion: bool = True
) -> np.ndarray:
    """Pinhole projection (+ Brown-Conrady radial/tangential distortion) to pixels."""
    xy = points_camera[..., :2] / points_camera[..., 2:3]
    if distortion:
        k1, k2, k3 = camera.radial_distortion
        p1, p2 = camera.tangential_distortion
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xy = np.stack(
            [
                x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
            ],
            axis=-1,
        )
    return xy * camera.focal_length + camera.center


def normalize_screen_coordinates(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixels -> [-1, 1] along x, keeping the aspect ratio (y in [-h/w, h/w])."""
    if pixels.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) pixel coordinates, got shape {pixels.shape}")
    return pixels / width * 2.0 - np.array([1.0, height / width], dtype=pixels.dtype)


def image_coordinates(normalized: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`."""
    return (normalized + np.array([1.0, height / width], dtype=normalized.dtype)) * width / 2.0
