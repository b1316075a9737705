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
    synthesize(root, seed=1, frames=60, noise_px=2.0, subjects=("S1", "S9", "S11"),
               actions=("Walking 1", "Directions"))
    return root


def test_h36m_files_round_trip_through_the_real_loader(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1", "S11"])
    # S11 'Directions' camera 0 is the known corrupt take: skipped
    assert len(sequences) == 2 * 2 * 4 - 1
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
    sequence = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                         ["S9"], actions=["Walking"])[0]
    assert sequence.action == "Walking 1"
    dx2d = sequence.keypoints_2d[:, 16, 0] - sequence.keypoints_2d[:, 3, 0]
    assert np.corrcoef(dx2d, sequence.poses_3d[:, 16, 0] - sequence.poses_3d[:, 3, 0])[0, 1] > 0.8


def test_detections_and_downsampling(synthetic):
    noisy = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_detections.npz",
                      ["S1"], actions=["Directions"], downsample=2)
    clean = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                      ["S1"], actions=["Directions"], downsample=2)
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
    humaneva = load_humaneva(synthetic / "data_3d_humaneva15.npz",
                             synthetic / "data_2d_humaneva15_gt.npz",
                             ["Validate/S1"], actions=["Walk", "Box"])
    assert len(humaneva) == 2 * 3
    assert humaneva[0].keypoints_2d.shape[1:] == (HUMANEVA_15.num_joints, 2)
    with pytest.raises(DataError, match="unknown 3DHP split"):
        load_3dhp(synthetic / "data_test_3dhp.npz", "val")


def test_windows_are_edge_padded_and_flipped(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1"], actions=["Walking"])
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    assert windows.num_frames == 4 * 60
    keypoints, poses = windows.batch(np.array([0, 59]))
    first = sequences[0]
    np.testing.assert_array_equal(keypoints[0, :5].numpy(),
                                  np.repeat(first.keypoints_2d[:1], 5, 0))
    np.testing.assert_array_equal(keypoints[1, 4].numpy(), first.keypoints_2d[59])
    np.testing.assert_array_equal(keypoints[1, 5:].numpy(),
                                  np.repeat(first.keypoints_2d[59:], 4, 0))
    assert poses.shape == (2, 9, 17, 3)
    flipped, flipped_poses = windows.batch(np.array([10]), flip=np.array([True]))
    np.testing.assert_allclose(flip_poses(flipped.numpy(), H36M_17),
                               windows.batch(np.array([10]))[0].numpy())
    assert flipped_poses[0, 4, 4, 0] == -windows.batch(np.array([10]))[1][0, 4, 1, 0]


def test_batch_order_is_decided_by_the_generator_state(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1"])
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
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1"], actions=["Walking"])
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    ids = np.array([0, 7, 100, 239])
    keypoints, poses = windows.batch(ids)
    flipped, flipped_poses = windows.batch(ids, flip=np.array([True, False, True, True]))
    for out, plain in ((flipped, keypoints), (flipped_poses, poses)):
        torch.testing.assert_close(out[[0, 2, 3]], flip_poses(plain[[0, 2, 3]], H36M_17))
        torch.testing.assert_close(out[1], plain[1])


def test_centre_only_targets_are_the_centre_frame_of_the_full_targets(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1"], actions=["Walking"])
    full = WindowedPoses(sequences, 9, H36M_17)
    centre = WindowedPoses(sequences, 9, H36M_17, full_sequence_3d=False)
    ids, flip = np.array([3, 50, 61]), np.array([False, True, True])
    keypoints, poses = full.batch(ids, flip)
    centre_keypoints, centre_poses = centre.batch(ids, flip)
    torch.testing.assert_close(centre_keypoints, keypoints)
    assert centre_poses.shape == (3, 1, 17, 3)
    torch.testing.assert_close(centre_poses, poses[:, 4:5])


def test_ranks_build_disjoint_shares_of_the_same_epoch(synthetic):
    sequences = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz",
                          ["S1"])
    windows = WindowedPoses(sequences, 9, H36M_17, flip_augment=True)
    single = list(windows.iterate(16, True, np.random.default_rng(5), max_batches=7))
    assert len(single) == 7
    shares = [list(windows.iterate(16, True, np.random.default_rng(5), rank=rank,
                                   world_size=3, max_batches=7)) for rank in range(3)]
    assert [len(share) for share in shares] == [3, 2, 2]
    for index, (keypoints, poses) in enumerate(single):
        expected_keypoints, expected_poses = shares[index % 3][index // 3]
        torch.testing.assert_close(expected_keypoints, keypoints)
        torch.testing.assert_close(expected_poses, poses)
