"""BVH export: forward kinematics over the written file gives back the lifted poses (checked with
our reader, with bvhio, and with Blender's importer where Blender is installed), and a target
that cannot be written is one line naming the file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from glagcn.bvh import CAMERA_TO_BVH, BvhError, bvh_pose, read_bvh, write_bvh
from glagcn.data.synthesize import animate
from glagcn.skeleton import H36M_17
from trilab.errors import UserError
from trilab.testing import exit_of_entry_point

FPS = 50.0
MAX_ANGLE_DEG = 0.5
# the bones whose parent has one child: their directions are exact whatever the torso does
LIMB_BONES = [(c, p) for c, p in H36M_17.bones if p not in (0, 8)]
GIRDLE_BONES = [(c, p) for c, p in H36M_17.bones if p in (0, 8)]


def _camera_poses(action="Greeting", frames=120, seed=0, root_relative=True):
    """Synthetic motion (rigid pelvis and shoulders) seen from a tilted camera: (T, 17, 3) m,
    x right, y down, z forward, as predict.py writes poses."""
    rng = np.random.default_rng(seed)
    world = animate(action, frames, 1.0, rng)  # z up
    world_to_camera = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # camera looking along +y
    tilt = Rotation.from_euler("xyz", [12, -25, 4], degrees=True).as_matrix()
    camera = world @ world_to_camera.T @ tilt.T + np.array([0.1, -0.2, 4.0])
    return camera - camera[:, :1] if root_relative else camera


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _bone_errors(fk: np.ndarray, poses_bvh: np.ndarray, bones) -> dict[str, float]:
    return {
        H36M_17.joint_names[c]: float(
            _angles_deg(fk[:, c] - fk[:, p], poses_bvh[:, c] - poses_bvh[:, p]).max()
        )
        for c, p in bones
    }


def _named_positions(motion) -> np.ndarray:
    """(F, 17, 3) forward-kinematics positions of the H36M-17 joints, found by name (a file
    written with girdle="exact" holds 6 helper joints besides them)."""
    fk = motion.positions()
    return fk[:, [motion.joint_names.index(name) for name in H36M_17.joint_names]]


def _lifted_like(poses: np.ndarray, seed=3, noise_m=0.01) -> np.ndarray:
    """Poses as a lifter gives them: every joint a little off, so bone lengths and the shape of
    the hips and shoulders change from frame to frame."""
    return poses + np.random.default_rng(seed).normal(0, noise_m, poses.shape)


def test_forward_kinematics_gives_back_every_bone_length_and_the_root(tmp_path):
    poses = _camera_poses(root_relative=False)
    path = write_bvh(tmp_path / "walk.bvh", poses, FPS)
    motion = read_bvh(path)
    assert motion.joint_names == list(H36M_17.joint_names)
    assert motion.parents == list(H36M_17.parents)
    assert motion.frame_time == pytest.approx(1 / FPS)
    fk = motion.positions()
    expected = poses @ CAMERA_TO_BVH.T
    assert fk.shape == expected.shape
    errors = _bone_errors(fk, expected, H36M_17.bones)
    assert max(errors.values()) < MAX_ANGLE_DEG, errors
    np.testing.assert_allclose(fk[:, 0], expected[:, 0], atol=2e-6)  # the root's translation
    # a rigid skeleton (constant bone lengths) comes back joint by joint
    np.testing.assert_allclose(fk, expected, atol=1e-5)


def test_lifted_poses_keep_every_limb_direction_and_the_median_bone_lengths(tmp_path):
    poses = _lifted_like(_camera_poses(action="Walking", frames=150, seed=1))
    motion = read_bvh(write_bvh(tmp_path / "lifted.bvh", poses, FPS))
    fk = motion.positions()
    expected = poses @ CAMERA_TO_BVH.T
    limbs = _bone_errors(fk, expected, LIMB_BONES)
    assert max(limbs.values()) < MAX_ANGLE_DEG, limbs
    # pelvis and thorax are rigid in BVH: their three bones get the best-fitting rotation, off
    # by the lifted shape's wobble (1 cm per joint on 11-25 cm bones: up to about 20 degrees),
    # never a bone turned the wrong way
    girdle = _bone_errors(fk, expected, GIRDLE_BONES)
    assert max(girdle.values()) < 30.0, girdle
    for c, p in H36M_17.bones:
        median = np.median(np.linalg.norm(poses[:, c] - poses[:, p], axis=-1))
        np.testing.assert_allclose(
            np.linalg.norm(fk[:, c] - fk[:, p], axis=-1), median, rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(fk[:, 0], expected[:, 0], atol=2e-6)


def test_exact_girdles_give_back_every_bone_direction_with_helper_joints(tmp_path):
    poses = _lifted_like(_camera_poses(action="Walking", frames=150, seed=1), noise_m=0.02)
    motion = read_bvh(write_bvh(tmp_path / "exact.bvh", poses, FPS, girdle="exact"))
    helpers = [name for name in motion.joint_names if name not in H36M_17.joint_names]
    assert sorted(helpers) == sorted(
        f"{H36M_17.joint_names[p]}_to_{H36M_17.joint_names[c]}" for c, p in GIRDLE_BONES
    )
    for helper in helpers:  # zero length, between the girdle joint and its child
        assert not motion.offsets[motion.joint_names.index(helper)].any()
    fk = _named_positions(motion)
    expected = poses @ CAMERA_TO_BVH.T
    errors = _bone_errors(fk, expected, H36M_17.bones)
    assert max(errors.values()) < MAX_ANGLE_DEG, errors
    for c, p in H36M_17.bones:
        median = np.median(np.linalg.norm(poses[:, c] - poses[:, p], axis=-1))
        np.testing.assert_allclose(
            np.linalg.norm(fk[:, c] - fk[:, p], axis=-1), median, rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(fk[:, 0], expected[:, 0], atol=2e-6)


def test_the_pelvis_and_thorax_rotations_are_the_best_fit_of_their_three_bones(tmp_path):
    """No other rotation of the pelvis lays its three rest bones closer to the lifted ones."""
    poses = _lifted_like(_camera_poses(frames=20, seed=2), noise_m=0.02)
    pose = bvh_pose(poses)
    positions = poses @ CAMERA_TO_BVH.T
    for girdle in (0, 8):
        kids = [c for c, p in H36M_17.bones if p == girdle]
        rest = pose.offsets[kids] / np.linalg.norm(pose.offsets[kids], axis=-1, keepdims=True)
        target = positions[:, kids] - positions[:, [girdle]]
        target /= np.linalg.norm(target, axis=-1, keepdims=True)

        def cost(rotation, rest, target):
            return ((np.einsum("ij,kj->ki", rotation, rest) - target) ** 2).sum()

        for t in range(len(poses)):
            best = cost(pose.global_rotations[t, girdle], rest, target[t])
            for nudge in Rotation.random(20, random_state=t).as_rotvec() * 0.02:
                nudged = Rotation.from_rotvec(nudge).as_matrix() @ pose.global_rotations[t, girdle]
                assert cost(nudged, rest, target[t]) >= best - 1e-12


@pytest.mark.parametrize("girdle", ["rigid", "exact"])
def test_bvhio_reads_the_same_joint_positions(tmp_path, girdle):
    bvhio = pytest.importorskip("bvhio")
    poses = _lifted_like(_camera_poses(frames=30, seed=4))
    path = write_bvh(tmp_path / "check.bvh", poses, FPS, girdle=girdle)
    motion = read_bvh(path)
    fk = motion.positions()
    root = bvhio.readAsHierarchy(str(path))
    names = motion.joint_names
    assert len(names) == (17 if girdle == "rigid" else 23)
    seen = set()
    for frame in (0, 17, 29):
        root.loadPose(frame)
        for joint, _, _ in root.layout():
            seen.add(joint.Name)
            np.testing.assert_allclose(
                list(joint.PositionWorld), fk[frame, names.index(joint.Name)], atol=1e-5
            )
    assert seen == set(names)


def test_a_left_limb_stays_a_left_limb(tmp_path):
    poses = _camera_poses(frames=10)
    motion = read_bvh(write_bvh(tmp_path / "sides.bvh", poses, FPS))
    # rest pose: the person's left is +X in the file, their right -X
    names = motion.joint_names
    for side, sign in (("left", 1), ("right", -1)):
        for joint in ("hip", "shoulder", "elbow", "wrist"):
            assert sign * motion.offsets[names.index(f"{side}_{joint}")][0] > 0, (side, joint)
    # every frame: the body's handedness (left-right, up, forward) is kept, no mirror image
    fk, expected = motion.positions(), poses @ CAMERA_TO_BVH.T

    def handedness(p):
        across = p[:, 4] - p[:, 1]  # right hip -> left hip
        up = p[:, 8] - p[:, 0]  # pelvis -> thorax
        ahead = p[:, 9] - p[:, 8]  # thorax -> nose
        return np.sign(np.einsum("ti,ti->t", np.cross(across, up), ahead))

    np.testing.assert_array_equal(handedness(fk), handedness(expected))
    # Y up: an upright person's head is above the pelvis (in the camera frame, y points down)
    assert (poses[:, 10, 1] < poses[:, 0, 1]).all() and (fk[:, 10, 1] > fk[:, 0, 1]).all()
    np.testing.assert_array_equal(handedness(poses), handedness(expected))
    assert np.linalg.det(CAMERA_TO_BVH) == 1.0


def test_centimetres_scale_offsets_and_positions(tmp_path):
    poses = _camera_poses(frames=8)
    metres = read_bvh(write_bvh(tmp_path / "m.bvh", poses, FPS)).positions()
    centimetres = read_bvh(write_bvh(tmp_path / "cm.bvh", poses, FPS, units="cm")).positions()
    np.testing.assert_allclose(centimetres, 100 * metres, atol=1e-3)


def test_joint_names_are_written_as_given(tmp_path):
    names = [f"j{i}_{n}" for i, n in enumerate(H36M_17.joint_names)]
    path = write_bvh(tmp_path / "named.bvh", _camera_poses(frames=4), FPS, np.array(names))
    assert read_bvh(path).joint_names == names


def test_invalid_frames_hold_the_last_valid_pose(tmp_path):
    poses = _camera_poses(frames=12)
    gappy = poses.copy()
    gappy[:2] = np.nan  # before the first valid frame: the first valid pose
    gappy[5:8] = np.nan
    fk = read_bvh(write_bvh(tmp_path / "gaps.bvh", gappy, FPS)).positions()
    assert len(fk) == 12
    expected = poses @ CAMERA_TO_BVH.T
    for frame, source in [(0, 2), (1, 2), (5, 4), (7, 4), (8, 8)]:
        np.testing.assert_allclose(fk[frame], expected[source], atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[:, :16], r"shape \(T, 17, 3\)"),
        (lambda p: np.full_like(p, np.nan), "no frame has all 17 joints finite"),
        (lambda p: p.astype(object), "real numbers"),
        (lambda p: np.zeros_like(p), "median length 0"),
    ],
)
def test_poses_that_cannot_be_written_are_user_errors(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        write_bvh(tmp_path / "bad.bvh", change(_camera_poses(frames=4)), FPS)
    assert not (tmp_path / "bad.bvh").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(fps=0), "fps"),
        (dict(fps="fast"), "fps"),
        (dict(joint_names=["a b"] * 17), "cannot be a BVH joint name"),
        (dict(joint_names=["a"] * 17), "repeat"),
        (dict(joint_names=["a"] * 3), "3 names for 17 joints"),
        (dict(units="inch"), "units"),
        (dict(girdle="loose"), "girdle"),
        (
            dict(
                girdle="exact",
                joint_names=[*H36M_17.joint_names[:4], "pelvis_to_right_hip"]
                + list(H36M_17.joint_names[5:]),
            ),
            "is taken",
        ),
    ],
)
def test_bad_options_are_user_errors(tmp_path, arguments, message):
    given = dict(fps=FPS, joint_names=None) | arguments
    with pytest.raises(BvhError, match=message):
        write_bvh(tmp_path / "bad.bvh", _camera_poses(frames=4), given.pop("fps"), **given)


def _one_line_write_error(target, poses) -> str:
    status, stderr = exit_of_entry_point(lambda: write_bvh(target, poses, FPS), "predict.py")
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert str(target) in lines[0], stderr
    return lines[0]


def test_a_target_that_cannot_be_written_is_one_line_naming_the_file(tmp_path, monkeypatch):
    poses = _camera_poses(frames=4)
    folder_in_the_way = tmp_path / "poses.bvh"
    folder_in_the_way.mkdir()
    assert "it is a folder" in _one_line_write_error(folder_in_the_way, poses)
    assert "does not exist" in _one_line_write_error(tmp_path / "missing" / "poses.bvh", poses)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert "is not a folder" in _one_line_write_error(a_file / "poses.bvh", poses)

    # a read-only file system (or a full disk): the file there before stays whole
    target = tmp_path / "kept.bvh"
    target.write_text("the previous export")
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and str(path).endswith(".tmp"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert "Read-only file system" in _one_line_write_error(target, poses)
    monkeypatch.undo()
    assert target.read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "kept.bvh", "poses.bvh"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert "Permission denied" in _one_line_write_error(
            folder / "poses.bvh", _camera_poses(frames=4)
        )
    finally:
        folder.chmod(0o700)


def test_a_broken_file_is_named_with_its_line(tmp_path):
    good = write_bvh(tmp_path / "good.bvh", _camera_poses(frames=3), FPS).read_text()
    cases = {
        "cut.bvh": good[: len(good) // 3],
        "channel.bvh": good.replace("Zrotation", "Wrotation", 1),
        "values.bvh": good.rstrip()[: good.rstrip().rfind(" ")],
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(BvhError, match=rf"{name}, line \d+"):
            read_bvh(tmp_path / name)
    with pytest.raises(BvhError, match="no such file"):
        read_bvh(tmp_path / "absent.bvh")


BLENDER_IMPORT = """
import builtins, json, sys
import bpy

_open = builtins.open
def _open_text(file, mode="r", *args, **kwargs):  # Blender 3.4's importer opens with 'rU'
    return _open(file, mode.replace("U", ""), *args, **kwargs)
builtins.open = _open_text
bvh, out = sys.argv[sys.argv.index("--") + 1 :]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_anim.bvh(filepath=bvh)  # default options: scale 1, forward -Z, up Y
armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
heads = {}
for frame in (1, 9, 20):
    bpy.context.scene.frame_set(frame)
    evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
    heads[frame - 1] = {b.name: list(evaluated.matrix_world @ b.head) for b in evaluated.pose.bones}
json.dump(heads, open(out, "w"))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed")
@pytest.mark.parametrize("girdle", ["rigid", "exact"])
def test_blender_imports_the_joints_where_we_put_them(tmp_path, girdle):
    """Blender's BVH importer, default options, is the reference user: BVH Y-up becomes
    Blender's Z-up, (x, y, z) -> (x, -z, y), in metres."""
    poses = _lifted_like(_camera_poses(frames=20, seed=5, root_relative=False))
    path = write_bvh(tmp_path / "blender.bvh", poses, FPS, girdle=girdle)
    motion = read_bvh(path)
    fk = motion.positions()
    script, out = tmp_path / "import.py", tmp_path / "heads.json"
    script.write_text(BLENDER_IMPORT)
    done = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(script), "--", str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    names = motion.joint_names
    for frame, heads in json.loads(out.read_text()).items():
        assert set(heads) == set(names)
        for name, head in heads.items():
            x, y, z = fk[int(frame), names.index(name)]
            np.testing.assert_allclose(head, [x, -z, y], atol=1e-5)
