"""BVH export of lifted 3D poses, and a BVH reader with forward kinematics to check it.

Conventions of the written file (what Blender's importer and other tools see):

* **Axes**: BVH's usual Y-up, right-handed frame.  ``poses_3d`` are in the camera frame
  (x right, y down, z forward, as ``predict.py`` writes them); the file holds them turned 180
  degrees about x: ``(x, -y, -z)``.  A proper rotation, so a left limb stays a left limb; a
  person facing the camera faces +Z, their left towards +X.  Blender's importer with its default
  axis options (forward -Z, up Y) maps this to Blender's Z-up, the person facing -Y (the front
  view).
* **Units**: metres by default (``units="m"``), so Blender's default import scale (1 BVH unit = 1
  Blender unit = 1 m) gives a person of real size; ``units="cm"`` writes centimetres for tools
  that expect them (import into Blender with scale 0.01).
* **Hierarchy**: the skeleton rooted at the pelvis, joints in the skeleton's order, named as in
  ``joint_names`` of ``poses_3d.npz``.  The root has ``Xposition Yposition Zposition Zrotation
  Xrotation Yrotation`` channels and OFFSET 0 0 0 (so readers that add the root's OFFSET to its
  position and readers that do not agree); every other joint ``Zrotation Xrotation Yrotation``.
  Rotations are in degrees, intrinsic Z then X then Y: ``R = Rz @ Rx @ Ry`` acting on column
  vectors, a child's position ``parent + R_parent_global @ OFFSET``.  Leaves (ankles, wrists,
  head) end in an End Site.
* **Offsets**: each bone's length is its median over the valid frames.  Rest pose: a T-pose
  (legs down, arms out sideways, spine, neck and head up) with the pelvis and thorax shaped as
  the sequence's median hips/spine and shoulders/neck in their own frames.
* **Rotations**: per frame, from the 3D positions.  A joint with one child turns its parent's
  orientation by the smallest rotation that lays the rest bone onto the lifted bone (no twist
  about the bone beyond what the parent carries).  The pelvis and thorax, with three children
  each, take the rotation that best fits their three bones (least squares, Kabsch).  Leaves take
  their parent's orientation.  With ``girdle="rigid"`` (the default: the 17 joints and nothing
  else, what retargeting tools expect) those six bones are exact only while the lifted
  hips/spine (shoulders/neck) keep their median shape, and are otherwise off by that frame's
  deviation from it (``benchmarks/bench_smoothing/bvh_fidelity.md`` measures it); every other
  bone's direction is exact.  ``girdle="exact"`` hangs each of the six from a zero-length helper
  joint ``<parent>_to_<child>`` (23 joints in all) that turns it onto the lifted bone, so every
  bone's direction is exact.
* **Root translation**: the pelvis position of each frame (``poses_3d`` of ``predict.py`` are
  root-relative, so it is the origin).
* Frames with a NaN joint (frames ``predict.py`` marks invalid) hold the last valid pose before
  them (frames before the first valid one take that one), so the file keeps one frame per video
  frame.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from glagcn.skeleton import H36M_17, Skeleton
from trilab.atomic import atomic_write
from trilab.errors import UserError, WriteError

UNITS = {"m": 1.0, "cm": 100.0}
# How the three bones from the pelvis and from the thorax are turned: "rigid" (the 17 joints,
# one best-fitting rotation each) or "exact" (a zero-length helper joint per bone; 23 joints)
GIRDLES = ("rigid", "exact")
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
EULER_ORDER = "ZXY"  # scipy's upper case: intrinsic, R = Rz @ Rx @ Ry
# camera frame (x right, y down, z forward) -> BVH (Y up): 180 degrees about x
CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])
# T-pose direction of the bone ending at each H36M-17 joint, BVH axes (x left, y up, z forward);
# the bones from the pelvis and the thorax are left out: they take the sequence's median shape.
H36M_T_POSE = {
    2: (0, -1, 0),
    3: (0, -1, 0),
    5: (0, -1, 0),
    6: (0, -1, 0),
    8: (0, 1, 0),
    10: (0, 1, 0),
    12: (1, 0, 0),
    13: (1, 0, 0),
    15: (-1, 0, 0),
    16: (-1, 0, 0),
}
# End Site of each leaf joint: direction (BVH rest axes) and length as a share of its bone's
END_SITES_H36M = {
    3: ((0, 0, 1), 0.35),  # ankle -> toes, forward
    6: ((0, 0, 1), 0.35),
    10: ((0, 1, 0), 0.5),  # head -> crown
    13: ((1, 0, 0), 0.3),  # wrist -> hand
    16: ((-1, 0, 0), 0.3),
}
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class BvhError(UserError, ValueError):
    """Poses or names that cannot be written as BVH, or a BVH file that cannot be read."""


def _children(skeleton: Skeleton) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in range(skeleton.num_joints)]
    for child, parent in skeleton.bones:
        children[parent].append(child)
    return children


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis; NaN where a vector has no length."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-9, vectors / norm, np.nan)


def _girdle_frame(directions: dict[int, np.ndarray], left: int, right: int, axial: int):
    """(T, 3, 3) rotations whose columns are the girdle's left, up and forward axes: x from the
    right child to the left one, y the axial bone made perpendicular to x, z = x cross y."""
    x = _unit(directions[left] - directions[right])
    axial_direction = directions[axial]
    y = _unit(axial_direction - (axial_direction * x).sum(-1, keepdims=True) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def _kabsch(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T, 3, 3) proper rotations R minimising sum_i |R rest_i - target_it|^2.

    rest: (K, 3) unit vectors; target: (T, K, 3) unit vectors (NaN rows are left out)."""
    target = np.nan_to_num(target, nan=0.0)
    covariance = np.einsum("tki,kj->tij", target, rest)  # sum_k target_k rest_k^T
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    correction = np.ones((len(target), 3))
    correction[:, 2] = sign
    return (u * correction[:, None, :]) @ vt


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) smallest rotations taking unit vectors a to b (T, 3); identity where b is NaN;
    half a turn about an axis perpendicular to a where b = -a."""
    cross = np.cross(a, b)
    dot = (a * b).sum(-1)
    quat = np.concatenate([cross, (1.0 + dot)[:, None]], axis=1)  # scipy: (x, y, z, w)
    opposite = (1.0 + dot) < 1e-9
    if opposite.any():
        helper = np.where(
            (np.abs(a[opposite, 0]) < 0.9)[:, None], [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]
        )
        axis = _unit(np.cross(a[opposite], helper))
        quat[opposite] = np.concatenate([axis, np.zeros((len(axis), 1))], axis=1)
    missing = ~np.isfinite(quat).all(axis=1)
    quat[missing] = [0.0, 0.0, 0.0, 1.0]
    return Rotation.from_quat(quat).as_matrix()


def _hold_invalid_frames(positions: np.ndarray) -> np.ndarray:
    valid = np.isfinite(positions).all(axis=(1, 2))
    if not valid.any():
        raise BvhError("no frame has all 17 joints finite: nothing to write")
    index = np.where(valid, np.arange(len(valid)), -1)
    index = np.maximum.accumulate(index)
    index[index < 0] = np.argmax(valid)  # before the first valid frame: the first valid one
    return positions[index]


def _check_names(joint_names, skeleton: Skeleton) -> list[str]:
    names = list(skeleton.joint_names if joint_names is None else joint_names)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != skeleton.num_joints:
        raise BvhError(f"joint_names has {len(names)} names for {skeleton.num_joints} joints")
    for name in names:
        if not _NAME.match(name):
            raise BvhError(
                f"joint name {name!r} cannot be a BVH joint name (letters, digits, _ . : - only)"
            )
    if len(set(names)) != len(names):
        raise BvhError(f"joint_names repeat a name: {names}")
    return names


@dataclass
class BvhPose:
    """What :func:`write_bvh` computed (BVH axes and units)."""

    offsets: np.ndarray  # (J, 3) rest offset of each joint from its parent
    global_rotations: np.ndarray  # (T, J, 3, 3)
    local_euler_deg: np.ndarray  # (T, J, 3) Z, X, Y angles
    root_positions: np.ndarray  # (T, 3)
    bone_lengths: np.ndarray  # (J,) median length of the bone ending at each joint (root: 0)
    positions: np.ndarray = field(repr=False)  # (T, J, 3) the poses written (held frames filled)
    # girdle="exact": for each child of the pelvis and thorax, the (T, 3) Z, X, Y angles of the
    # helper joint between it and its parent, relative to the parent
    helper_euler_deg: dict[int, np.ndarray] = field(default_factory=dict)


def _euler_deg(matrices: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a gimbal lock still gives angles that rebuild R exactly
        warnings.simplefilter("ignore", UserWarning)
        flat = Rotation.from_matrix(matrices.reshape(-1, 3, 3)).as_euler(EULER_ORDER, degrees=True)
    return flat.reshape(matrices.shape[:-2] + (3,))


def bvh_pose(
    poses_3d: np.ndarray,
    units: str = "m",
    skeleton: Skeleton = H36M_17,
    girdle: str = "rigid",
) -> BvhPose:
    """Offsets and per-frame rotations of the BVH file of ``poses_3d`` (T, J, 3) in metres,
    camera frame; see the module docstring for the conventions."""
    if girdle not in GIRDLES:
        raise BvhError(f"girdle must be one of {list(GIRDLES)}, got {girdle!r}")
    if skeleton.name != H36M_17.name:
        raise BvhError(f"BVH export knows the T-pose of h36m17 only, not {skeleton.name}")
    if units not in UNITS:
        raise BvhError(f"units must be one of {sorted(UNITS)}, got {units!r}")
    poses = np.asarray(poses_3d)
    if not np.issubdtype(poses.dtype, np.number) or np.iscomplexobj(poses):
        raise BvhError(f"poses_3d must hold real numbers, got dtype {poses.dtype}")
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints, 3) or len(poses) == 0:
        raise BvhError(
            f"poses_3d must have shape (T, {skeleton.num_joints}, 3) with T >= 1, got {poses.shape}"
        )
    positions = _hold_invalid_frames(poses.astype(np.float64)) @ CAMERA_TO_BVH.T * UNITS[units]
    frames, joints = positions.shape[:2]
    parents = skeleton.parents
    children = _children(skeleton)
    direction = {c: _unit(positions[:, c] - positions[:, p]) for c, p in skeleton.bones}
    lengths = np.zeros(joints)
    for c, p in skeleton.bones:
        lengths[c] = np.median(np.linalg.norm(positions[:, c] - positions[:, p], axis=-1))
        if lengths[c] <= 0:
            raise BvhError(
                f"bone {skeleton.joint_names[p]} -> {skeleton.joint_names[c]} has median "
                "length 0: the poses are degenerate"
            )

    rest = {c: np.asarray(v, dtype=np.float64) for c, v in H36M_T_POSE.items()}
    girdles = {}
    for joint, kids in enumerate(children):
        if len(kids) < 2:
            continue
        left = [k for k in kids if k in skeleton.joints_left]
        right = [k for k in kids if k in skeleton.joints_right]
        axial = [k for k in kids if k not in left and k not in right]
        frame = _girdle_frame(direction, left[0], right[0], axial[0])
        for kid in kids:  # the girdle's median shape, in its own frame
            local = np.einsum("tji,tj->ti", frame, direction[kid])
            rest[kid] = _unit(np.nanmedian(local, axis=0))
        girdles[joint] = kids
    offsets = np.zeros((joints, 3))
    for c, _ in skeleton.bones:
        offsets[c] = rest[c] * lengths[c]

    global_rotations = np.zeros((frames, joints, 3, 3))
    helpers: dict[int, np.ndarray] = {}  # girdle="exact": girdle child -> its helper's rotation
    for joint in range(joints):  # parents come before children in the skeleton's order
        parent = parents[joint]
        parent_rotation = np.eye(3)[None] if parent < 0 else global_rotations[:, parent]
        if joint in helpers:
            parent_rotation = helpers[joint]
        if joint in girdles:
            kids = girdles[joint]
            target = np.stack([direction[k] for k in kids], axis=1)
            rotation = _kabsch(np.stack([rest[k] for k in kids]), target)
            global_rotations[:, joint] = rotation
            if girdle == "exact":  # each bone from the girdle turned on its own
                for kid in kids:
                    rest_now = np.einsum("tij,j->ti", rotation, rest[kid])
                    helpers[kid] = _swing(rest_now, direction[kid]) @ rotation
        elif len(children[joint]) == 1:
            child = children[joint][0]
            rest_now = np.einsum("tij,j->ti", parent_rotation, rest[child])
            global_rotations[:, joint] = _swing(rest_now, direction[child]) @ parent_rotation
        else:
            global_rotations[:, joint] = parent_rotation
    local = global_rotations.copy()
    for joint in range(joints):
        if parents[joint] >= 0:
            parent_rotation = helpers.get(joint, global_rotations[:, parents[joint]])
            local[:, joint] = np.swapaxes(parent_rotation, -1, -2) @ global_rotations[:, joint]
    helper_euler = {
        kid: _euler_deg(np.swapaxes(global_rotations[:, parents[kid]], -1, -2) @ rotation)
        for kid, rotation in helpers.items()
    }
    return BvhPose(
        offsets=offsets,
        global_rotations=global_rotations,
        local_euler_deg=_euler_deg(local),
        root_positions=positions[:, skeleton.root],
        bone_lengths=lengths,
        positions=positions,
        helper_euler_deg=helper_euler,
    )


def _number(vector) -> str:
    return " ".join(f"{v:.6f}" for v in vector)


def _file_text(names: list[str], pose: BvhPose, skeleton: Skeleton, fps: float) -> str:
    """Hierarchy (depth-first from the root) and motion table; with helper joints
    (girdle="exact") each child of the pelvis and thorax hangs from a zero-length joint named
    ``<parent>_to_<child>`` that turns its bone on its own."""
    children = _children(skeleton)
    lines = ["HIERARCHY"]
    columns = [pose.root_positions]

    def open_joint(kind: str, name: str, offset, depth: int) -> None:
        pad = "\t" * depth
        channels = ROOT_CHANNELS if kind == "ROOT" else JOINT_CHANNELS
        lines.extend(
            [
                f"{pad}{kind} {name}",
                f"{pad}{{",
                f"{pad}\tOFFSET {_number(offset)}",
                f"{pad}\tCHANNELS {len(channels)} {' '.join(channels)}",
            ]
        )

    def joint(index: int, depth: int) -> None:
        parent = skeleton.parents[index]
        helper = index in pose.helper_euler_deg
        if helper:
            open_joint("JOINT", f"{names[parent]}_to_{names[index]}", np.zeros(3), depth)
            columns.append(pose.helper_euler_deg[index])
            depth += 1
        open_joint("ROOT" if parent < 0 else "JOINT", names[index], pose.offsets[index], depth)
        columns.append(pose.local_euler_deg[:, index])
        pad = "\t" * depth
        for child in children[index]:
            joint(child, depth + 1)
        if not children[index]:
            site_direction, share = END_SITES_H36M[index]
            length = share * np.linalg.norm(pose.offsets[index])
            site = np.asarray(site_direction, dtype=np.float64) * length
            lines.extend(
                [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {_number(site)}", f"{pad}\t}}"]
            )
        lines.append(f"{pad}}}")
        if helper:
            lines.append("\t" * (depth - 1) + "}")

    joint(skeleton.root, 0)
    values = np.concatenate(columns, axis=1)
    buffer = io.StringIO()
    np.savetxt(buffer, values, fmt="%.6f", delimiter=" ")
    return (
        "\n".join(lines)
        + f"\nMOTION\nFrames: {len(values)}\nFrame Time: {1.0 / fps:.8f}\n"
        + buffer.getvalue()
    )


def bvh_text(
    poses_3d: np.ndarray,
    fps: float,
    joint_names=None,
    *,
    units: str = "m",
    girdle: str = "rigid",
    skeleton: Skeleton = H36M_17,
) -> str:
    """The BVH file of ``poses_3d`` as text (see :func:`write_bvh`)."""
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise BvhError(f"fps must be a positive number, got {fps!r}") from None
    if not math.isfinite(fps) or fps <= 0:
        raise BvhError(f"fps must be a positive number, got {fps!r}")
    names = _check_names(joint_names, skeleton)
    pose = bvh_pose(poses_3d, units, skeleton, girdle)
    if girdle == "exact":
        taken = set(names)
        for kid in pose.helper_euler_deg:
            helper = f"{names[skeleton.parents[kid]]}_to_{names[kid]}"
            if helper in taken:
                raise BvhError(f"joint name {helper!r} is taken: girdle='exact' needs it")
    return _file_text(names, pose, skeleton, fps)


def write_bvh(
    path: str | Path,
    poses_3d: np.ndarray,
    fps: float,
    joint_names=None,
    *,
    units: str = "m",
    girdle: str = "rigid",
    skeleton: Skeleton = H36M_17,
) -> Path:
    """Write ``poses_3d`` (T, 17, 3), metres in the camera frame as ``predict.py`` writes them,
    as a BVH file at ``fps`` frames per second; returns the path.

    Conventions (axes, units, rest pose, rotation order) are in the module docstring.  The file
    is written atomically: a failure leaves what was at ``path`` before.  A target that cannot be
    written (a folder in the way, a missing or read-only folder, a full disk) is a one-line
    :class:`~trilab.errors.WriteError` naming the file; the parent folder is not created.
    """
    path = Path(path)
    text = bvh_text(poses_3d, fps, joint_names, units=units, girdle=girdle, skeleton=skeleton)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise WriteError(f"cannot write {path}: the folder {path.parent} {what}")
    try:
        atomic_write(path, lambda handle: handle.write(text.encode("ascii")))
    except UserError:
        raise
    except OSError as error:  # e.g. a folder created at the path meanwhile (EISDIR)
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno == errno.EISDIR:
            reason = "it is a folder"
        raise WriteError(f"cannot write {path}: {reason}") from None
    return path


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class BvhMotion:
    """A BVH file: its joints in file order (End Sites left out) and its motion table."""

    joint_names: list[str]
    parents: list[int]  # index into joint_names, -1 for the root
    offsets: np.ndarray  # (J, 3)
    channels: list[tuple[str, ...]]
    end_sites: dict[int, np.ndarray]  # joint index -> End Site offset
    frame_time: float
    motion: np.ndarray  # (F, total channels)

    def _columns(self) -> list[np.ndarray]:
        starts = np.cumsum([0] + [len(c) for c in self.channels])
        return [self.motion[:, starts[j] : starts[j + 1]] for j in range(len(self.channels))]

    def global_rotations(self) -> np.ndarray:
        """(F, J, 3, 3): each joint's rotation in the file's frame (channels applied in the order
        listed, ``R = R_first @ R_second @ R_third``)."""
        return self._forward_kinematics()[1]

    def positions(self) -> np.ndarray:
        """(F, J, 3) joint positions by forward kinematics: ``parent + R_parent @ (OFFSET +
        position channels)``; the root's parent is the origin."""
        return self._forward_kinematics()[0]

    def _forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        frames, joints = len(self.motion), len(self.joint_names)
        positions = np.zeros((frames, joints, 3))
        rotations = np.zeros((frames, joints, 3, 3))
        for joint, (values, channels) in enumerate(
            zip(self._columns(), self.channels, strict=True)
        ):
            local = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
            translation = np.zeros((frames, 3))
            for column, channel in enumerate(channels):
                axis = "XYZ".index(channel[0].upper())
                if channel[1:].lower() == "position":
                    translation[:, axis] = values[:, column]
                else:
                    local = local @ _axis_rotation(axis, np.radians(values[:, column]))
            parent = self.parents[joint]
            step = self.offsets[joint] + translation
            if parent < 0:
                positions[:, joint] = step
                rotations[:, joint] = local
            else:
                positions[:, joint] = positions[:, parent] + np.einsum(
                    "tij,tj->ti", rotations[:, parent], step
                )
                rotations[:, joint] = rotations[:, parent] @ local
        return positions, rotations


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


_CHANNEL = re.compile(r"^[XYZ](position|rotation)$", re.IGNORECASE)


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file (any channel order; End Sites kept apart from the joints)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except FileNotFoundError:
        raise BvhError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise BvhError(f"{path}: not a BVH file (not plain text)") from None
    tokens: list[tuple[str, int]] = [
        (token, number)
        for number, line in enumerate(text.splitlines(), 1)
        for token in line.split()
    ]
    position = 0

    def fail(message: str):
        line = tokens[min(position, len(tokens) - 1)][1] if tokens else 0
        raise BvhError(f"{path}, line {line}: {message}")

    def take(expected: str | None = None) -> str:
        nonlocal position
        if position >= len(tokens):
            fail(f"file ends early (expected {expected or 'more'})")
        token = tokens[position][0]
        if expected is not None and token != expected:
            fail(f"expected {expected!r}, found {token!r}")
        position += 1
        return token

    def take_float() -> float:
        token = take()
        try:
            return float(token)
        except ValueError:
            fail(f"expected a number, found {token!r}")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}

    def joint(parent: int) -> None:
        index = len(names)
        names.append(take())
        parents.append(parent)
        offsets.append([0.0, 0.0, 0.0])
        channels.append(())
        take("{")
        while True:
            token = take()
            if token == "OFFSET":
                offsets[index] = [take_float() for _ in range(3)]
            elif token == "CHANNELS":
                count = take()
                if not count.isdigit():
                    fail(f"expected a channel count, found {count!r}")
                listed = tuple(take() for _ in range(int(count)))
                for channel in listed:
                    if not _CHANNEL.match(channel):
                        fail(f"unknown channel {channel!r}")
                channels[index] = listed
            elif token == "JOINT":
                joint(index)
            elif token == "End":
                take("Site")
                take("{")
                take("OFFSET")
                end_sites[index] = np.array([take_float() for _ in range(3)])
                take("}")
            elif token == "}":
                return
            else:
                fail(f"unexpected {token!r} in joint {names[index]!r}")

    take("HIERARCHY")
    take("ROOT")
    joint(-1)
    take("MOTION")
    take("Frames:")
    frames_token = take()
    if not frames_token.isdigit():
        fail(f"expected the number of frames, found {frames_token!r}")
    take("Frame")
    take("Time:")
    frame_time = take_float()
    width = sum(len(c) for c in channels)
    values = tokens[position:]
    frames = int(frames_token)
    if len(values) != frames * width:
        fail(
            f"{len(values)} motion values for {frames} frames of {width} channels "
            f"({frames * width} expected)"
        )
    try:
        motion = np.array([float(v) for v, _ in values], dtype=np.float64).reshape(frames, width)
    except ValueError as error:
        raise BvhError(f"{path}: a motion value is not a number ({error})") from None
    return BvhMotion(
        joint_names=names,
        parents=parents,
        offsets=np.array(offsets, dtype=np.float64).reshape(-1, 3),
        channels=channels,
        end_sites=end_sites,
        frame_time=frame_time,
        motion=motion,
    )
