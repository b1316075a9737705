"""The authors' scoring on a toy set whose answers are worked out by hand.

Two actions x two takes x two cameras of one subject; every prediction is its target moved by a
known offset, so each sequence's MPJPE is that offset (mm):

| take      | frames | camera 0 | camera 1 | take mean |
|-----------|--------|----------|----------|-----------|
| Walking   | 10     | 10       | 20       | 15        |
| Walking 1 | 30     | 30       | 40       | 35        |
| Sitting 1 | 20     | 40       | 50       | 45        |
| Sitting 2 | 10     | 60       | 70       | 65        |

Walking = (10*10 + 10*20 + 30*30 + 30*40) / 80 = 30; Sitting = (20*40 + 20*50 + 10*60 + 10*70)
/ 60 = 51.67; mean over actions = 40.83, while the mean over takes would be 40 and over frames
39.29.
"""

import numpy as np
import pytest

from glagcn.data.sequences import PoseSequence
from glagcn.evaluation import evaluate_predictions
from glagcn.skeleton import H36M_17, MPI_INF_3DHP_17

TAKES = {
    "Walking": (10, 10.0, 20.0),
    "Walking 1": (30, 30.0, 40.0),
    "Sitting 1": (20, 40.0, 50.0),
    "Sitting 2": (10, 60.0, 70.0),
}
SITTING = (20 * 40 + 20 * 50 + 10 * 60 + 10 * 70) / 60


def _toy(skeleton, root_offset_only=False):
    rng = np.random.default_rng(0)
    sequences, predictions = [], []
    for take, (frames, *errors_mm) in TAKES.items():
        for camera, error_mm in enumerate(errors_mm):
            target = rng.normal(0, 0.2, size=(frames, skeleton.num_joints, 3))
            target -= target[:, skeleton.root : skeleton.root + 1]
            predicted = target.copy()
            if root_offset_only:
                predicted[:, skeleton.root, 0] += error_mm / 1000.0
            else:
                predicted[..., 0] += error_mm / 1000.0  # the whole pose, root included
            keypoints = np.zeros((frames, skeleton.num_joints, 2), dtype=np.float32)
            sequences.append(PoseSequence("S9", take, camera, keypoints, target))
            predictions.append(predicted)
    return sequences, predictions


def test_headline_is_the_mean_over_actions_of_frame_weighted_action_errors():
    result = evaluate_predictions(*_toy(H36M_17), H36M_17)
    assert result["per_action"]["Walking"]["mpjpe_mm"] == pytest.approx(30.0)
    assert result["per_action"]["Sitting"]["mpjpe_mm"] == pytest.approx(SITTING)
    assert result["mpjpe_mm"] == pytest.approx((30.0 + SITTING) / 2)
    assert result["per_take"]["Walking 1"]["mpjpe_mm"] == pytest.approx(35.0)
    assert set(result["per_action"]) == {"Walking", "Sitting"}
    assert result["frames"] == 2 * (10 + 30 + 20 + 10)


def test_the_predicted_root_is_scored_as_it_comes_out():
    # a prediction displaced as a whole: the authors' MPJPE counts the displacement, a
    # root-centred score (kept under its own name) does not, P-MPJPE aligns it away
    result = evaluate_predictions(*_toy(H36M_17), H36M_17)
    assert result["per_take"]["Walking"]["mpjpe_mm"] == pytest.approx(15.0)
    assert result["mpjpe_root_centred_mm"] == pytest.approx(0.0, abs=1e-9)
    assert result["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    # only the root off by e: MPJPE = e / 17 (one joint of 17 is wrong)
    only_root = evaluate_predictions(*_toy(H36M_17, root_offset_only=True), H36M_17)
    assert only_root["per_take"]["Walking"]["mpjpe_mm"] == pytest.approx(15.0 / 17)


def test_3dhp_zeroes_the_predicted_root_and_averages_over_valid_frames():
    sequences, predictions = _toy(MPI_INF_3DHP_17)
    for sequence in sequences:
        sequence.valid = np.ones(len(sequence.keypoints_2d), dtype=bool)
    sequences[0].valid[:5] = False  # Walking, camera 0: 5 of its 10 frames have no ground truth
    result = evaluate_predictions(sequences, predictions, MPI_INF_3DHP_17)
    # the root joint is set to 0 before scoring: 16 of 17 joints keep the displacement
    frames = {0: 5, 1: 10, 2: 30, 3: 30, 4: 20, 5: 20, 6: 10, 7: 10}
    errors = [10, 20, 30, 40, 40, 50, 60, 70]
    expected = sum(frames[i] * errors[i] for i in frames) / sum(frames.values()) * 16 / 17
    assert result["mpjpe_mm"] == pytest.approx(expected)
    assert result["frames"] == sum(frames.values())


def test_by_subject_tables_follow_videopose3d_or_the_authors_last_take_grouping():
    result = evaluate_predictions(*_toy(H36M_17), H36M_17)
    s9 = result["per_subject"]["S9"]
    assert s9["per_action"]["Walking"]["mpjpe_mm"] == pytest.approx(30.0)
    assert s9["mpjpe_mm"] == pytest.approx((30.0 + SITTING) / 2)
    # GLA-GCN's scripts keep only the last take of each action (file order) per subject
    last = evaluate_predictions(*_toy(H36M_17), H36M_17, by_subject_last_take_only=True)
    assert last["per_subject"]["S9"]["per_action"]["Walking"]["mpjpe_mm"] == pytest.approx(35.0)
    assert last["per_subject"]["S9"]["mpjpe_mm"] == pytest.approx((35.0 + 65.0) / 2)
    assert last["mpjpe_mm"] == pytest.approx(result["mpjpe_mm"])  # the headline is unchanged
