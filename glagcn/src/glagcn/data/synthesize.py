"""Seeded synthetic motion capture written in the real dataset formats.

A 17-joint body with realistic bone lengths (per-subject scale) is animated by parametric joint
angles (hip/knee/shoulder/elbow flexion, torso lean and twist, root path and heading) for several
motions named like Human3.6M actions, placed in the capture area, and projected through the real
H36M cameras of each subject.  Written files:

* ``data_3d_h36m.npz`` (32 mocap joints, world metres) and ``data_2d_h36m_gt.npz`` (pixels);
* ``data_2d_h36m_detections.npz`` with Gaussian pixel noise when ``noise_px > 0``;
* ``data_test_3dhp.npz`` / ``data_train_3dhp.npz`` (3DHP joint order, mm, valid masks) and
  ``data_3d_humaneva15.npz`` / ``data_2d_humaneva15_gt.npz`` (15 joints, world metres seen by the
  HumanEva-I cameras) / ``data_2d_humaneva15_detectron_pt_coco.npz`` (COCO-17 pixels), each in
  the layout the real preparation scripts write.

Like the real files where evaluation depends on it: two takes of each action per subject
("Directions", "Directions 1"; "Sitting 1", "Sitting 2"), takes of unequal length (some shorter
than a 243-frame window), some 2D arrays a few frames longer than the mocap (their videos ran
on), no S11 "Directions" (VideoPose3D's preparation drops it), chunked HumanEva-I takes.

``python -m glagcn.data.synthesize --out DIR [--seed 0] [--frames 400] [--noise-px 0]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from glagcn.camera import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    _calibration,
    h36m_cameras,
    humaneva_extrinsics,
    project_to_pixels,
    world_to_camera,
)
from glagcn.data.h36m import kept_joints_of_32, write_h36m_npz
from glagcn.skeleton import H36M_17
from trilab.entry import ensure_folder
from trilab.errors import UserError, report_user_errors

FPS = 50.0
# Bumped whenever the generator's output changes, so a folder made by an older version is
# rewritten instead of silently reused (see ``splits.ensure_synthetic``).
FORMAT_VERSION = 2
STAMP_FILE = "synthetic.json"
# Body frame: x = the person's left, y = forward, z = up.  (joint, rest direction, length m)
BONES = {
    1: ((-1, 0, 0), 0.13),
    2: ((0, 0, -1), 0.45),
    3: ((0, 0, -1), 0.44),
    4: ((1, 0, 0), 0.13),
    5: ((0, 0, -1), 0.45),
    6: ((0, 0, -1), 0.44),
    7: ((0, 0, 1), 0.23),
    8: ((0, 0, 1), 0.25),
    9: ((0, 0.3, 1), 0.12),
    10: ((0, 0, 1), 0.11),
    11: ((1, 0, 0), 0.15),
    12: ((0, 0, -1), 0.28),
    13: ((0, 0, -1), 0.25),
    14: ((-1, 0, 0), 0.15),
    15: ((0, 0, -1), 0.28),
    16: ((0, 0, -1), 0.25),
}
# Two takes per action, named as in VideoPose3D's Human3.6M files.
ACTIONS = (
    "Directions",
    "Directions 1",
    "Greeting",
    "Greeting 1",
    "Sitting 1",
    "Sitting 2",
    "Waiting",
    "Waiting 1",
    "Walking",
    "Walking 1",
)
MISSING_TAKES = {("S11", "Directions")}  # not in the real files: its video is corrupt
LENGTH_RANGE = (0.35, 1.15)  # take length as a fraction of ``frames``
EXTRA_2D_FRAMES = (0, 0, 0, 2, 4)  # video frames past the mocap's end, drawn per take
STANDING_PELVIS_HEIGHT = 0.95


def _wave(t, frequency, phase, amplitude, offset=0.0):
    return offset + amplitude * np.sin(2 * np.pi * frequency * t + phase)


def _angles(action: str, t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Joint angles (radians) over time for one take of ``action``; varied by ``rng``."""
    f = rng.uniform(0.8, 1.2)
    ph = rng.uniform(0, 2 * np.pi)
    a = rng.uniform(0.8, 1.2)
    zero = np.zeros_like(t)
    angles = {
        name: zero.copy()
        for name in (
            "hip_l",
            "hip_r",
            "knee_l",
            "knee_r",
            "shoulder_l",
            "shoulder_r",
            "abduct_l",
            "abduct_r",
            "elbow_l",
            "elbow_r",
            "lean",
            "twist",
            "neck",
            "yaw_rate",
            "speed",
            "height",
        )
    }
    angles["abduct_l"] += 0.15
    angles["abduct_r"] += 0.15
    if action.startswith("Walking"):
        swing = _wave(t, f, ph, 0.45 * a)
        angles.update(
            hip_l=swing,
            hip_r=-swing,
            knee_l=np.maximum(_wave(t, f, ph - 1.2, 0.6 * a), 0),
            knee_r=np.maximum(_wave(t, f, ph + np.pi - 1.2, 0.6 * a), 0),
            shoulder_l=-0.6 * swing,
            shoulder_r=0.6 * swing,
            elbow_l=0.3 + 0.2 * swing,
            elbow_r=0.3 - 0.2 * swing,
            lean=zero + 0.08,
            speed=zero + 1.1 * a,
            yaw_rate=zero + 0.5 * f,
            height=_wave(t, 2 * f, 2 * ph, 0.02),
        )
    elif action.startswith("Sitting"):
        angles.update(
            hip_l=zero + 1.5,
            hip_r=zero + 1.5,
            knee_l=zero + 1.5,
            knee_r=zero + 1.5,
            shoulder_l=_wave(t, 0.3 * f, ph, 0.4 * a, 0.3),
            elbow_l=_wave(t, 0.3 * f, ph, 0.6 * a, 1.0),
            shoulder_r=zero + 0.2,
            elbow_r=zero + 0.5,
            lean=_wave(t, 0.2 * f, ph, 0.15, 0.1),
            twist=_wave(t, 0.15, ph, 0.3),
            height=zero - 0.47,
        )
    elif action.startswith("Greeting"):
        angles.update(
            abduct_r=_wave(t, 0.25 * f, ph, 0.5, 1.9),
            elbow_r=_wave(t, 1.6 * f, ph, 0.5 * a, 0.9),
            shoulder_l=_wave(t, 0.25 * f, ph, 0.2),
            twist=_wave(t, 0.2, ph, 0.25),
            neck=_wave(t, 0.3, ph, 0.2),
            hip_l=_wave(t, 0.5 * f, ph, 0.1),
            knee_l=np.abs(_wave(t, 0.5 * f, ph, 0.15)),
        )
    elif action.startswith("Directions"):
        angles.update(
            shoulder_r=np.clip(_wave(t, 0.2 * f, ph, 1.4 * a, 0.4), 0, 1.6),
            elbow_r=zero + 0.2,
            shoulder_l=_wave(t, 0.15, ph, 0.2),
            yaw_rate=_wave(t, 0.1, ph, 0.6),
            twist=_wave(t, 0.2, ph + 1, 0.3),
            speed=np.clip(_wave(t, 0.1, ph, 0.5), 0, None),
        )
    else:  # Waiting: weight shifts, sway, head turns
        shift = _wave(t, 0.25 * f, ph, 0.12 * a)
        angles.update(
            hip_l=shift,
            hip_r=-shift,
            knee_l=np.abs(shift),
            knee_r=np.abs(shift),
            lean=_wave(t, 0.3 * f, ph, 0.06),
            neck=_wave(t, 0.2, ph, 0.5),
            shoulder_l=zero + 0.1,
            shoulder_r=zero + 0.1,
            elbow_l=zero + 1.2,
            elbow_r=zero + 1.2,
        )
    return angles


def _rx(angle):
    return Rotation.from_rotvec(np.outer(angle, [1.0, 0.0, 0.0]))


def _ry(angle):
    return Rotation.from_rotvec(np.outer(angle, [0.0, 1.0, 0.0]))


def _rz(angle):
    return Rotation.from_rotvec(np.outer(angle, [0.0, 0.0, 1.0]))


def animate(action: str, frames: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """World positions (frames, 17, 3) in metres of one take."""
    t = np.arange(frames) / FPS
    angles = _angles(action, t, rng)
    identity = Rotation.identity(frames)
    local = {joint: identity for joint in range(17)}
    local[1] = _rx(angles["hip_r"])
    local[4] = _rx(angles["hip_l"])
    local[2] = _rx(-angles["knee_r"])
    local[5] = _rx(-angles["knee_l"])
    local[7] = _rz(angles["twist"]) * _rx(angles["lean"])
    local[9] = _rz(angles["neck"])
    local[14] = _ry(angles["abduct_r"]) * _rx(angles["shoulder_r"])
    local[11] = _ry(-angles["abduct_l"]) * _rx(angles["shoulder_l"])
    local[15] = _rx(angles["elbow_r"])
    local[12] = _rx(angles["elbow_l"])
    # root path: heading integrates the yaw rate, position follows the heading at `speed`
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(angles["yaw_rate"]) / FPS
    forward = np.stack([-np.sin(heading), np.cos(heading), np.zeros(frames)], axis=1)
    start = rng.uniform(-0.8, 0.8, size=2)
    path = np.cumsum(forward * angles["speed"][:, None], axis=0) / FPS
    path[:, :2] += start
    path[:, :2] = np.clip(path[:, :2], -1.6, 1.6)  # stay inside the capture volume
    root = Rotation.from_rotvec(np.outer(heading, [0, 0, 1.0]))
    height = scale * STANDING_PELVIS_HEIGHT + angles["height"] * scale
    positions = np.zeros((frames, 17, 3))
    positions[:, 0] = path + np.stack([np.zeros(frames), np.zeros(frames), height], axis=1)
    global_rotation = {0: root}
    for joint in range(1, 17):
        parent = H36M_17.parents[joint]
        direction, length = BONES[joint]
        offset = np.asarray(direction, dtype=np.float64)
        offset = offset / np.linalg.norm(offset) * length * scale
        positions[:, joint] = positions[:, parent] + global_rotation[parent].apply(offset)
        global_rotation[joint] = global_rotation[parent] * local[joint]
    return positions


def to_mocap_32(poses_17: np.ndarray) -> np.ndarray:
    """Fill the 32-joint layout: kept joints from the 17, removed ones at their parent."""
    parents = _calibration()["mocap_32_parents"]
    out = np.zeros((len(poses_17), 32, 3))
    kept = kept_joints_of_32()
    out[:, kept] = poses_17
    for joint in sorted(set(range(32)) - set(kept.tolist())):
        out[:, joint] = out[:, parents[joint]]
    return out


def _pinhole(points: np.ndarray, focal: float, centre: tuple[float, float]) -> np.ndarray:
    return points[..., :2] / points[..., 2:3] * focal + np.asarray(centre)


def _look_at_camera_space(world: np.ndarray, azimuth: float, distance: float) -> np.ndarray:
    """World points seen by a camera at ``distance`` on the given azimuth, looking at the origin
    from 1.5 m height (camera axes: x right, y down, z forward)."""
    eye = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), 1.5])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return (world - eye) @ rotation.T


H36M_TO_3DHP = [10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9]
H36M_TO_HUMANEVA = [0, 8, 11, 12, 13, 14, 15, 16, 4, 5, 6, 1, 2, 3, 10]


PROGRAM = "python -m glagcn.data.synthesize"
MIN_FRAMES = 2  # the shortest take a sequence can be cut from


def _take_length(frames: int, vary_lengths: bool, rng: np.random.Generator) -> int:
    if not vary_lengths:
        return frames
    return max(2, int(round(frames * rng.uniform(*LENGTH_RANGE))))


def synthesize(
    out: str | Path,
    seed: int = 0,
    frames: int = 400,
    noise_px: float = 0.0,
    subjects=H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS,
    actions=ACTIONS,
    vary_lengths: bool = True,
) -> Path:
    """Write every file; ``actions`` are take names, ``frames`` the nominal take length."""
    if frames < MIN_FRAMES:
        raise UserError(f"--frames must be at least {MIN_FRAMES} (frames per take), got {frames}")
    if not (math.isfinite(noise_px) and noise_px >= 0):
        raise UserError(f"--noise-px must be a finite number >= 0 (pixels), got {noise_px}")
    out = ensure_folder(out, "output folder")
    rng = np.random.default_rng(seed)
    positions_3d: dict = {}
    positions_2d: dict = {}
    detections: dict = {}
    for subject in subjects:
        scale = rng.uniform(0.9, 1.1)
        cameras = h36m_cameras(subject)
        positions_3d[subject], positions_2d[subject], detections[subject] = {}, {}, {}
        for action in actions:
            if (subject, action) in MISSING_TAKES:
                continue
            mocap = _take_length(frames, vary_lengths, rng)
            extra = int(rng.choice(EXTRA_2D_FRAMES)) if vary_lengths else 0
            world = animate(action, mocap + extra, scale, rng)
            positions_3d[subject][action] = to_mocap_32(world[:mocap]).astype(np.float32)
            views = [
                project_to_pixels(world_to_camera(world, c.orientation, c.translation), c).astype(
                    np.float32
                )
                for c in cameras
            ]
            positions_2d[subject][action] = views
            detections[subject][action] = [
                (v + rng.normal(0, noise_px, v.shape)).astype(np.float32) for v in views
            ]
    write_h36m_npz(out, positions_3d, positions_2d, "gt")
    demo_subject = subjects[-1]
    demo_take = max(positions_2d[demo_subject], key=lambda a: len(positions_2d[demo_subject][a][0]))
    write_coco_keypoints(out / "demo_keypoints.json", positions_2d[demo_subject][demo_take][0], rng)
    if noise_px > 0:
        write_h36m_npz(out, positions_3d, detections, "detections")
    _write_3dhp(out, rng, frames)
    _write_humaneva(out, rng, frames, vary_lengths)
    (out / STAMP_FILE).write_text(
        json.dumps({"format_version": FORMAT_VERSION, "seed": seed, "frames": frames})
    )
    return out


# COCO-17 joint -> H36M-17 joint it is drawn from (eyes and ears sit around the head joint).
COCO_FROM_H36M = [9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3]
COCO_HEAD_OFFSETS_PX = {1: (6, 0), 2: (-6, 0), 3: (14, 2), 4: (-14, 2)}  # eye midpoint = head


def _coco_pixels(pixels_h36m: np.ndarray) -> np.ndarray:
    """(T, 17, 2) H36M-17 pixels -> COCO-17 pixels, eyes and ears offset around the head."""
    coco = pixels_h36m[:, COCO_FROM_H36M].astype(np.float64)
    for joint, offset in COCO_HEAD_OFFSETS_PX.items():
        coco[:, joint] += offset
    return coco


def write_coco_keypoints(path: Path, pixels_h36m: np.ndarray, rng: np.random.Generator) -> None:
    """One person's track as a keypoint detector writes it: a JSON list of per-frame objects
    with ``keypoints`` = [x, y, score] * 17 in COCO order (a few low-score joints included)."""
    coco = pixels_h36m[:, COCO_FROM_H36M].astype(np.float64)
    for joint, (dx, dy) in COCO_HEAD_OFFSETS_PX.items():
        coco[:, joint] += (dx, dy)
    scores = rng.uniform(0.6, 1.0, size=coco.shape[:2])
    scores[rng.random(scores.shape) < 0.03] = 0.1  # occasional missed joints, filled by lifting
    entries = [
        {
            "image_id": frame,
            "category_id": 1,
            "score": float(s.mean()),
            "keypoints": np.concatenate([k, s[:, None]], axis=1).round(2).ravel().tolist(),
        }
        for frame, (k, s) in enumerate(zip(coco, scores, strict=True))
    ]
    path.write_text(json.dumps(entries))


def _write_3dhp(out: Path, rng: np.random.Generator, frames: int) -> None:
    data = {}
    for index, action in enumerate(("Directions", "Greeting", "Sitting 1")):
        world = animate(action, frames, rng.uniform(0.9, 1.1), rng)
        camera = _look_at_camera_space(world, rng.uniform(0, 2 * np.pi), 4.5)
        pixels = _pinhole(camera, 1500.0, (1024.0, 1024.0))[:, H36M_TO_3DHP]
        data[f"TS{index + 1}"] = {
            "data_2d": pixels.astype(np.float32),
            "data_3d": (camera[:, H36M_TO_3DHP] * 1000).astype(np.float32),
            "valid": (rng.random(frames) > 0.05).astype(np.uint8),
        }
    np.savez_compressed(out / "data_test_3dhp.npz", data=data)
    train = {}
    for subject in ("S1", "S2"):
        world = animate("Walking 1", frames, rng.uniform(0.9, 1.1), rng)
        cameras = {}
        for number, azimuth in ((0, 0.3), (2, 2.0)):
            camera = _look_at_camera_space(world, azimuth, 4.5)
            cameras[str(number)] = {
                "data_2d": _pinhole(camera, 1500.0, (1024.0, 1024.0))[:, H36M_TO_3DHP].astype(
                    np.float32
                ),
                "data_3d": (camera[:, H36M_TO_3DHP] * 1000).astype(np.float32),
            }
        train[f"{subject} Seq1"] = [cameras]
    np.savez_compressed(out / "data_train_3dhp.npz", data=train)


# HumanEva-I takes as VideoPose3D names them: the mocap's valid stretches become chunks, and
# the gaps between them (chunk1 here) are left out of the files.
HUMANEVA_TAKES = {
    "Walking 1 chunk0": "Walking 1",
    "Walking 1 chunk2": "Walking 1",
    "Jog 1 chunk0": "Walking 1",
    "Box 1 chunk0": "Greeting",
}
HUMANEVA_FOCAL_PX = 420.0  # a pinhole stand-in for the real C1-C3 intrinsics (640x480)


def _write_humaneva(out: Path, rng: np.random.Generator, frames: int, vary_lengths: bool) -> None:
    positions_3d: dict = {}
    positions_2d: dict = {}
    detected: dict = {}
    for split in ("Train", "Validate"):
        for subject in ("S1", "S2", "S3"):
            key = f"{split}/{subject}"
            cameras = humaneva_extrinsics(key)
            positions_3d[key], positions_2d[key], detected[key] = {}, {}, {}
            for take, motion in HUMANEVA_TAKES.items():
                length = _take_length(frames, vary_lengths, rng)
                world = animate(motion, length, rng.uniform(0.9, 1.1), rng)
                positions_3d[key][take] = world[:, H36M_TO_HUMANEVA].astype(np.float32)
                views = [
                    _pinhole(
                        world_to_camera(world, orientation, translation),
                        HUMANEVA_FOCAL_PX,
                        (320.0, 240.0),
                    )
                    for orientation, translation in cameras
                ]
                positions_2d[key][take] = [v[:, H36M_TO_HUMANEVA].astype(np.float32) for v in views]
                detected[key][take] = [_coco_pixels(v).astype(np.float32) for v in views]
    np.savez_compressed(out / "data_3d_humaneva15.npz", positions_3d=positions_3d)
    # VideoPose3D's Mask R-CNN file holds COCO-17 joints (what the authors' HE_13 model takes);
    # here the exact projections, COCO's joints drawn from the H36M ones (no random draws)
    np.savez_compressed(
        out / "data_2d_humaneva15_detectron_pt_coco.npz",
        positions_2d=detected,
        metadata={
            "layout_name": "coco",
            "num_joints": 17,
            "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
        },
    )
    np.savez_compressed(
        out / "data_2d_humaneva15_gt.npz",
        positions_2d=positions_2d,
        metadata={
            "layout_name": "humaneva15",
            "num_joints": 15,
            "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]],
        },
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=400, help="frames per take (50 fps)")
    parser.add_argument(
        "--noise-px",
        type=float,
        default=0.0,
        help="also write data_2d_h36m_detections.npz with this pixel noise",
    )
    args = parser.parse_args(argv)
    report_user_errors(
        lambda: synthesize(args.out, args.seed, args.frames, args.noise_px), program=PROGRAM
    )
    print(f"synthetic Human3.6M/3DHP/HumanEva-format files written to {args.out}")


if __name__ == "__main__":
    main()
