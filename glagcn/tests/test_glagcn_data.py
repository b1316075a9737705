import numpy as np
import pytest
import torch

from glagcn.data.batching import WindowedPoses, flip_poses
from glagcn.data.h36m import load_h36m, write_h36m_npz
from glagcn.data.humaneva import load_humaneva
from glagcn.data.mpi3dhp import load_3dhp
from glagcn.data.sequences import DataError
from glagcn.data.synthesize import synthesize
from glagcn.skeleton import H36M_17, HUMANEVA_15, MPI_INF_3DHP_17


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(
        root,
        seed=1,
        frames=60,
        noise_px=2.0,
        subjects=("S1", "S9", "S11"),
        actions=("Walking 1", "Directions"),
        vary_lengths=False,
    )
    return root


@pytest.fixture(scope="module")
def like_the_real_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_like")
    synthesize(root, seed=4, frames=300, subjects=("S9", "S11"))
    return root


def test_h36m_files_round_trip_through_the_real_loader(synthetic):
    sequences = load_h36m(
        synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz", ["S1", "S11"]
    )
    # every camera of every take the files hold; like VideoPose3D's files, these have no
    # S11 "Directions"
    assert len(sequences) == 2 * 4 + 1 * 4
    assert {s.action for s in sequences if s.subject == "S11"} == {"Walking 1"}
    for sequence in sequences:
        assert sequence.keypoints_2d.shape == (60, 17, 2)
        assert sequence.poses_3d.dtype == np.float32
        assert np.abs(sequence.poses_3d[:, 0]).max() == 0.0  # root-relative
        assert np.abs(sequence.keypoints_2d).max() < 1.5  # screen-normalised
    # the 3D bone lengths survive the world -> camera transform
    legs = np.linalg.norm(sequences[0].poses_3d[:, 2] - sequences[0].poses_3d[:, 1], axis=-1)
    assert legs.std() < 1e-4 and 0.35 < legs.mean() < 0.55


def test_h36m_projection_agrees_with_the_camera_space_poses(synthetic):
    # The 2D files hold the real cameras' projections: in camera space x/z tracks the image x.
    sequence = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_gt.npz",
        ["S9"],
        actions=["Walking"],
    )[0]
    assert sequence.action == "Walking 1"
    dx2d = sequence.keypoints_2d[:, 16, 0] - sequence.keypoints_2d[:, 3, 0]
    assert np.corrcoef(dx2d, sequence.poses_3d[:, 16, 0] - sequence.poses_3d[:, 3, 0])[0, 1] > 0.8


def test_detections_and_downsampling(synthetic):
    noisy = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_detections.npz",
        ["S1"],
        actions=["Directions"],
        downsample=2,
    )
    clean = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_gt.npz",
        ["S1"],
        actions=["Directions"],
        downsample=2,
    )
    assert noisy[0].keypoints_2d.shape == (30, 17, 2)
    assert 0 < np.abs(noisy[0].keypoints_2d - clean[0].keypoints_2d).mean() < 0.05


def test_bad_h36m_input_names_file_and_key(tmp_path, synthetic):
    path_3d, path_2d = synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz"
    with pytest.raises(DataError, match="file not found: .*nothing.npz"):
        load_h36m(tmp_path / "nothing.npz", path_2d, ["S1"])
    with pytest.raises(DataError, match="subject 'S7' not in the file"):
        load_h36m(path_3d, path_2d, ["S7"])
    np.savez(tmp_path / "wrong_key.npz", poses=np.zeros(3))
    with pytest.raises(DataError, match="wrong_key.npz: missing key 'positions_3d'"):
        load_h36m(tmp_path / "wrong_key.npz", path_2d, ["S1"])
    world = {"S1": {"Walking 1": np.zeros((10, 32, 3), dtype=np.float32)}}
    pixels = {"S1": {"Walking 1": [np.zeros((10, 16, 2), dtype=np.float32)] * 4}}
    bad_3d, bad_2d = write_h36m_npz(tmp_path / "joints", world, pixels)
    with pytest.raises(DataError, match=r"S1/Walking 1/camera 0 has shape \(10, 16, 2\)"):
        load_h36m(bad_3d, bad_2d, ["S1"])
    pixels = {"S1": {"Walking 1": [np.full((10, 17, 2), np.nan, dtype=np.float32)] * 4}}
    bad_3d, bad_2d = write_h36m_npz(tmp_path / "nan", world, pixels)
    with pytest.raises(DataError, match="NaN/inf values in 10 frames"):
        load_h36m(bad_3d, bad_2d, ["S1"])


def test_3dhp_and_humaneva_formats(synthetic):
    test = load_3dhp(synthetic / "data_test_3dhp.npz", "test")
    assert [s.subject for s in test] == ["TS1", "TS2", "TS3"]
    assert test[0].valid.dtype == bool and test[0].valid.mean() > 0.8
    assert np.abs(test[0].poses_3d[:, MPI_INF_3DHP_17.root]).max() == 0.0
    train = load_3dhp(synthetic / "data_train_3dhp.npz", "train")
    assert len(train) == 4  # 2 sequences x 2 cameras
    humaneva = load_humaneva(
        synthetic / "data_3d_humaneva15.npz",
        synthetic / "data_2d_humaneva15_gt.npz",
        ["Validate/S1"],
        actions=["Walk", "Box"],
    )
    # takes Walking 1 chunk0, Walking 1 chunk2, Box 1 chunk0, each seen by C1-C3
    assert [(s.action, s.camera) for s in humaneva] == [
        (take, camera)
        for take in ("Walking 1 chunk0", "Walking 1 chunk2", "Box 1 chunk0")
        for camera in range(3)
    ]
    assert humaneva[0].keypoints_2d.shape[1:] == (HUMANEVA_15.num_joints, 2)
    with pytest.raises(DataError, match="unknown 3DHP split"):
        load_3dhp(synthetic / "data_test_3dhp.npz", "val")


def test_windows_are_edge_padded_and_flipped(synthetic):
    sequences = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_gt.npz",
        ["S1"],
        actions=["Walking"],
    )
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    assert windows.num_frames == 4 * 60
    keypoints, poses = windows.batch(np.array([0, 59]))
    first = sequences[0]
    np.testing.assert_array_equal(keypoints[0, :5].numpy(), np.repeat(first.keypoints_2d[:1], 5, 0))
    np.testing.assert_array_equal(keypoints[1, 4].numpy(), first.keypoints_2d[59])
    np.testing.assert_array_equal(
        keypoints[1, 5:].numpy(), np.repeat(first.keypoints_2d[59:], 4, 0)
    )
    assert poses.shape == (2, 9, 17, 3)
    flipped, flipped_poses = windows.batch(np.array([10]), flip=np.array([True]))
    np.testing.assert_allclose(
        flip_poses(flipped.numpy(), H36M_17), windows.batch(np.array([10]))[0].numpy()
    )
    assert flipped_poses[0, 4, 4, 0] == -windows.batch(np.array([10]))[1][0, 4, 1, 0]


def test_batch_order_is_decided_by_the_generator_state(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz", ["S1"])
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    generator = np.random.default_rng(3)
    list(windows.iterate(64, True, generator))
    saved = generator.bit_generator.state
    expected = [k.numpy() for k, _ in windows.iterate(64, True, generator)]
    resumed = np.random.default_rng(0)
    resumed.bit_generator.state = saved
    again = [k.numpy() for k, _ in windows.iterate(64, True, resumed)]
    assert all(np.array_equal(a, b) for a, b in zip(expected, again, strict=True))
    assert sum(len(batch) for batch in expected) == windows.num_frames


def test_a_flipped_window_is_the_mirror_image_of_the_window(synthetic):
    sequences = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_gt.npz",
        ["S1"],
        actions=["Walking"],
    )
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    ids = np.array([0, 7, 100, 239])
    keypoints, poses = windows.batch(ids)
    flipped, flipped_poses = windows.batch(ids, flip=np.array([True, False, True, True]))
    for out, plain in ((flipped, keypoints), (flipped_poses, poses)):
        torch.testing.assert_close(out[[0, 2, 3]], flip_poses(plain[[0, 2, 3]], H36M_17))
        torch.testing.assert_close(out[1], plain[1])


def test_centre_only_targets_are_the_centre_frame_of_the_full_targets(synthetic):
    sequences = load_h36m(
        synthetic / "data_3d_h36m.npz",
        synthetic / "data_2d_h36m_gt.npz",
        ["S1"],
        actions=["Walking"],
    )
    full = WindowedPoses(sequences, 9, H36M_17)
    centre = WindowedPoses(sequences, 9, H36M_17, full_sequence_3d=False)
    ids, flip = np.array([3, 50, 61]), np.array([False, True, True])
    keypoints, poses = full.batch(ids, flip)
    centre_keypoints, centre_poses = centre.batch(ids, flip)
    torch.testing.assert_close(centre_keypoints, keypoints)
    assert centre_poses.shape == (3, 1, 17, 3)
    torch.testing.assert_close(centre_poses, poses[:, 4:5])


def test_ranks_build_disjoint_shares_of_the_same_epoch(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz", ["S1"])
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    single = list(windows.iterate(16, True, np.random.default_rng(5), max_batches=7))
    assert len(single) == 7
    shares = [
        list(
            windows.iterate(
                16, True, np.random.default_rng(5), rank=rank, world_size=3, max_batches=7
            )
        )
        for rank in range(3)
    ]
    assert [len(share) for share in shares] == [3, 2, 2]
    for index, (keypoints, poses) in enumerate(single):
        expected_keypoints, expected_poses = shares[index % 3][index // 3]
        torch.testing.assert_close(expected_keypoints, keypoints)
        torch.testing.assert_close(expected_poses, poses)


def test_every_take_and_camera_is_evaluated_and_only_the_exact_corrupt_take_is_skipped(tmp_path):
    world = {
        "S11": {
            name: np.random.default_rng(0).normal(size=(12, 32, 3)).astype(np.float32)
            for name in ("Directions", "Directions 1", "Walking")
        }
    }
    pixels = {"S11": {name: [np.zeros((12, 17, 2), dtype=np.float32)] * 4 for name in world["S11"]}}
    path_3d, path_2d = write_h36m_npz(tmp_path, world, pixels)
    notes = []
    sequences = load_h36m(path_3d, path_2d, ["S11"], notes=notes)
    # "Directions 1" camera 0 is a valid take: kept, as the authors' script evaluates it
    assert [(s.action, s.camera) for s in sequences] == [
        (take, camera) for take in ("Directions 1", "Walking") for camera in range(4)
    ]
    assert len(notes) == 1 and "skipped S11 'Directions' (all cameras)" in notes[0]
    kept = load_h36m(path_3d, path_2d, ["S11"], skip_corrupt_take=False)
    assert len(kept) == 3 * 4


def test_2d_longer_than_the_mocap_is_cut_and_shorter_2d_is_refused(tmp_path):
    world = {"S9": {"Walking": np.zeros((10, 32, 3), dtype=np.float32)}}
    pixels = {"S9": {"Walking": [np.zeros((13, 17, 2), dtype=np.float32)] * 4}}
    sequences = load_h36m(*write_h36m_npz(tmp_path / "longer", world, pixels), ["S9"])
    assert all(len(s.keypoints_2d) == len(s.poses_3d) == 10 for s in sequences)
    pixels = {"S9": {"Walking": [np.zeros((8, 17, 2), dtype=np.float32)] * 4}}
    with pytest.raises(DataError, match=r"S9/Walking/camera 0 has 8 frames of 2D .* has 10"):
        load_h36m(*write_h36m_npz(tmp_path / "shorter", world, pixels), ["S9"])


def test_the_synthetic_set_looks_like_the_real_files_where_evaluation_depends_on_it(
    like_the_real_files,
):
    root = like_the_real_files
    from trilab.safe_load import load_npz

    world = load_npz(root / "data_3d_h36m.npz")["positions_3d"].item()
    pixels = load_npz(root / "data_2d_h36m_gt.npz")["positions_2d"].item()
    assert "Directions" not in world["S11"] and "Directions 1" in world["S11"]
    assert {"Directions", "Directions 1", "Sitting 1", "Sitting 2"} <= set(world["S9"])
    lengths = [len(world[s][a]) for s in world for a in world[s]]
    assert min(lengths) < 243 < max(lengths) and len(set(lengths)) > 5
    extra = [len(pixels[s][a][0]) - len(world[s][a]) for s in world for a in world[s]]
    assert min(extra) == 0 and max(extra) > 0


def test_humaneva_world_poses_are_seen_through_each_cameras_extrinsics(tmp_path):
    from glagcn.camera import humaneva_extrinsics, quaternion_rotate, root_relative, world_to_camera

    rng = np.random.default_rng(0)
    world = rng.normal(0, 0.3, size=(6, 15, 3)) + [0.0, 0.0, 1.0]
    views = [rng.uniform(0, 640, size=(8, 15, 2)).astype(np.float32) for _ in range(3)]
    np.savez(
        tmp_path / "data_3d_humaneva15.npz",
        positions_3d={"Validate/S2": {"Jog 1 chunk0": world.astype(np.float32)}},
    )
    np.savez(
        tmp_path / "data_2d_humaneva15_gt.npz",
        positions_2d={"Validate/S2": {"Jog 1 chunk0": views}},
    )
    sequences = load_humaneva(
        tmp_path / "data_3d_humaneva15.npz", tmp_path / "data_2d_humaneva15_gt.npz", ["Validate/S2"]
    )
    assert [len(s.keypoints_2d) for s in sequences] == [6, 6, 6]  # 2D cut to the mocap
    for camera, ((orientation, translation), sequence) in enumerate(
        zip(humaneva_extrinsics("S2"), sequences, strict=True)
    ):
        assert sequence.camera == camera
        expected = root_relative(
            world_to_camera(world.astype(np.float32), orientation, translation)
        )
        np.testing.assert_allclose(sequence.poses_3d, expected, atol=1e-5)
        # C1-C3 look at the capture area: a point 1 m ahead of the camera is at depth 1
        ahead = translation + quaternion_rotate(orientation, np.array([0.0, 0.0, 1.0]))
        np.testing.assert_allclose(
            world_to_camera(ahead, orientation, translation), [0, 0, 1], atol=1e-6
        )
    np.testing.assert_allclose(
        humaneva_extrinsics("Train/S2")[0][1], [4.1129121, 0.6264929, 1.5452988]
    )
    per_camera = {"Validate/S2": {"Jog 1 chunk0": [world.astype(np.float32)] * 3}}
    np.savez(tmp_path / "per_camera.npz", positions_3d=per_camera)
    with pytest.raises(DataError, match=r"one \(frames, 15, 3\) world-coordinate array"):
        load_humaneva(
            tmp_path / "per_camera.npz", tmp_path / "data_2d_humaneva15_gt.npz", ["Validate/S2"]
        )
    np.savez(tmp_path / "s4.npz", positions_3d={"Validate/S4": {"Jog 1 chunk0": world}})
    np.savez(tmp_path / "s4_2d.npz", positions_2d={"Validate/S4": {"Jog 1 chunk0": views}})
    with pytest.raises(DataError, match="no HumanEva-I camera calibration for subject"):
        load_humaneva(tmp_path / "s4.npz", tmp_path / "s4_2d.npz", ["Validate/S4"])


def test_the_demo_data_is_rewritten_only_when_an_older_generator_wrote_it(tmp_path, monkeypatch):
    import json

    import glagcn.data.synthesize as generator
    from glagcn.data.splits import ensure_synthetic

    written = []
    monkeypatch.setattr(generator, "synthesize", lambda root, seed: written.append(root.name))
    for name in ("empty", "older", "users", "stamped", "current"):
        (tmp_path / name).mkdir()
    for name in ("older", "users", "stamped", "current"):
        (tmp_path / name / "data_3d_h36m.npz").write_bytes(b"")
    (tmp_path / "older" / "demo_keypoints.json").write_text("[]")  # generator, no stamp
    (tmp_path / "stamped" / generator.STAMP_FILE).write_text(json.dumps({"format_version": 1}))
    (tmp_path / "current" / generator.STAMP_FILE).write_text(
        json.dumps({"format_version": generator.FORMAT_VERSION, "seed": 7})
    )
    for name in ("empty", "older", "users", "stamped", "current"):
        ensure_synthetic(tmp_path / name, seed=0)
    assert written == ["empty", "older", "stamped"]  # never a folder made otherwise


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "1"], "--frames must be at least 2 (frames per take), got 1"),
        (["--noise-px", "-1"], "--noise-px must be a finite number >= 0 (pixels), got -1.0"),
        (["--noise-px", "nan"], "--noise-px must be a finite number >= 0 (pixels), got nan"),
    ],
)
def test_generator_cli_refuses_a_bad_setting_before_writing(args, message, tmp_path):
    from glagcn.data.synthesize import main
    from trilab.testing import exit_of_entry_point

    out = tmp_path / "synthetic"
    status, stderr = exit_of_entry_point(lambda: main(["--out", str(out), *args]), "unused")
    assert status == 2
    assert stderr.strip() == f"python -m glagcn.data.synthesize: error: {message}"
    assert not out.exists()
