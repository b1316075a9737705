import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from glagcn.metrics import (
    ErrorTable,
    auc,
    joint_errors,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pck,
    procrustes_align,
)


def _poses(frames=4, seed=0):
    return np.random.default_rng(seed).normal(size=(frames, 17, 3))


def test_identical_poses_have_zero_error():
    poses = _poses()
    assert mpjpe(torch.tensor(poses), torch.tensor(poses)).item() == 0.0
    assert p_mpjpe(poses, poses) == pytest.approx(0.0, abs=1e-12)
    assert n_mpjpe(poses, poses) == pytest.approx(0.0, abs=1e-12)
    assert mpjve(poses, poses) == 0.0


def test_mpjpe_of_a_known_offset():
    poses = _poses()
    shifted = poses + np.array([3.0, 4.0, 0.0])
    assert mpjpe(torch.tensor(shifted), torch.tensor(poses)).item() == pytest.approx(5.0)
    # a constant offset has no velocity error
    assert mpjve(shifted, poses) == pytest.approx(0.0, abs=1e-12)


def test_procrustes_recovers_a_known_similarity_transform_per_frame():
    target = _poses(3)
    predicted = np.empty_like(target)
    for frame in range(3):
        rotation = Rotation.random(random_state=frame).as_matrix()
        predicted[frame] = (0.5 + frame) * target[frame] @ rotation.T + frame * 10.0
    np.testing.assert_allclose(procrustes_align(predicted, target), target, atol=1e-9)
    assert p_mpjpe(predicted, target) == pytest.approx(0.0, abs=1e-9)


def test_procrustes_never_reflects():
    target = _poses(2)
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    aligned = procrustes_align(mirrored, target)
    assert p_mpjpe(mirrored, target) > 0.1
    # the alignment is a proper rotation: distances are kept up to scale, handedness kept
    for frame in range(2):
        u = np.linalg.svd(aligned[frame] - aligned[frame].mean(0))[2]
        v = np.linalg.svd(mirrored[frame] - mirrored[frame].mean(0))[2]
        assert np.sign(np.linalg.det(u)) * np.sign(np.linalg.det(v)) != 0


def test_n_mpjpe_undoes_a_global_scale_only():
    target = _poses()
    assert n_mpjpe(1.7 * target, target) == pytest.approx(0.0, abs=1e-12)
    rotated = target @ Rotation.from_euler("z", 90, degrees=True).as_matrix().T
    assert n_mpjpe(rotated, target) > 0.1


def test_n_mpjpe_scales_each_frame_on_its_own_worked_by_hand():
    predicted = np.array(
        [[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [1, 0, 0], [0, 0, 0]]], dtype=float
    )
    target = np.array(
        [[[2, 0, 0], [0, 2, 0], [0, 0, 2]], [[1, 0, 0], [0, 1, 0], [0, 0, 0]]], dtype=float
    )
    # frame 0: s = (2 + 2 + 2) / (1 + 1 + 1) = 2, so s * pred = target: errors 0, 0, 0
    # frame 1: s = (1 + 0 + 0) / (1 + 1 + 0) = 0.5, s * pred = (.5,0,0), (.5,0,0), (0,0,0):
    #          errors |(-.5, 0, 0)| = 0.5, |(.5, -1, 0)| = sqrt(1.25), 0
    expected = (0.5 + np.sqrt(1.25)) / 6  # = 0.269672...
    assert n_mpjpe(predicted, target) == pytest.approx(expected, abs=1e-12)
    assert n_mpjpe(predicted, target) == pytest.approx(0.2696723314583158, abs=1e-12)
    # one scale for both frames would be (6 + 1) / (3 + 2) = 1.4: errors 0.6 x 3, 0.4,
    # sqrt(1.4^2 + 1), 0 -> 0.6534...; the per-frame definition does not give that
    assert n_mpjpe(predicted, target) != pytest.approx((1.8 + 0.4 + np.sqrt(2.96)) / 6)


def test_pck_and_auc_closed_form():
    target = np.zeros((1, 17, 3))
    predicted = np.zeros((1, 17, 3))
    predicted[0, :, 0] = np.arange(17) * 10.0  # errors 0, 10, ..., 160 mm
    assert pck(predicted, target, 150.0) == pytest.approx(16 / 17 * 100)
    assert pck(predicted, target, 150.0, joints=range(3)) == pytest.approx(100.0)
    thresholds = np.linspace(0, 150, 31)
    expected = np.mean([(np.arange(17) * 10.0 <= t).mean() for t in thresholds]) * 100
    assert auc(predicted, target) == pytest.approx(expected)


def test_error_table_means_over_actions_not_frames():
    table = ErrorTable()
    table.add("Walking", "S9", {"mpjpe_mm": 10.0}, frames=100)
    table.add("Walking 1", "S11", {"mpjpe_mm": 20.0}, frames=300)
    table.add("Sitting 1", "S9", {"mpjpe_mm": 40.0}, frames=10)
    assert table.per_action()["Walking"]["mpjpe_mm"] == pytest.approx(17.5)
    assert set(table.per_take()) == {"Walking", "Walking 1", "Sitting 1"}
    assert table.summary()["mpjpe_mm"] == pytest.approx((17.5 + 40.0) / 2)
    assert table.over_frames()["mpjpe_mm"] == pytest.approx((1000 + 6000 + 400) / 410)
    # by subject: per action, then the mean over that subject's actions
    assert table.by_subject()["S9"]["mpjpe_mm"] == pytest.approx((10 + 40) / 2)
    assert table.by_subject()["S11"]["per_action"] == {"Walking": {"mpjpe_mm": 20.0}}


def test_an_undefined_error_does_not_dilute_the_others():
    table = ErrorTable()
    table.add("Walking", "S9", {"mpjpe_mm": 10.0, "mpjve_mm": 4.0}, frames=10)
    table.add("Walking", "S9", {"mpjpe_mm": 20.0, "mpjve_mm": float("nan")}, frames=1)
    assert table.per_action()["Walking"]["mpjve_mm"] == pytest.approx(4.0)
    assert table.per_action()["Walking"]["mpjpe_mm"] == pytest.approx(120 / 11)


def test_joint_errors_shape():
    assert joint_errors(_poses(5), _poses(5, 1)).shape == (5, 17)
