import json

import numpy as np
import pytest

from glagcn.keypoints_io import (
    KeypointInputError,
    coco_to_h36m,
    fill_missing_joints,
    load_keypoints,
    to_h36m_sequence,
)


def _coco_frames(n_frames=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(100, 900, size=(n_frames, 17, 2)).astype(np.float32)


def _write_coco_json(path, keypoints, scores, extra_people=False):
    entries = []
    for frame, (kp, sc) in enumerate(zip(keypoints, scores, strict=True)):
        flat = np.concatenate([kp, sc[:, None]], axis=1).ravel().tolist()
        entries.append({"image_id": frame, "category_id": 1, "keypoints": flat, "score": 0.9})
        if extra_people:  # a weaker second person that must be ignored
            entries.append({"image_id": frame, "keypoints": [0.0] * 51, "score": 0.1})
    path.write_text(json.dumps(entries))


def test_coco_json_keeps_the_best_person_per_frame(tmp_path):
    keypoints = _coco_frames()
    scores = np.full((6, 17), 0.8, dtype=np.float32)
    path = tmp_path / "track.json"
    _write_coco_json(path, keypoints, scores, extra_people=True)
    sequence = load_keypoints(path)
    assert sequence.layout == "coco17"
    np.testing.assert_allclose(sequence.keypoints, keypoints, rtol=1e-6)
    np.testing.assert_array_equal(sequence.frame_indices, np.arange(6))


def test_coco_to_h36m_derives_pelvis_spine_thorax_head():
    coco = _coco_frames(1)[0]
    h36m, scores = coco_to_h36m(coco, np.linspace(0.5, 1.0, 17).astype(np.float32))
    pelvis = (coco[11] + coco[12]) / 2
    thorax = (coco[5] + coco[6]) / 2
    np.testing.assert_allclose(h36m[0], pelvis)
    np.testing.assert_allclose(h36m[8], thorax)
    np.testing.assert_allclose(h36m[7], (pelvis + thorax) / 2)
    np.testing.assert_allclose(h36m[10], (coco[1] + coco[2]) / 2)
    np.testing.assert_allclose(h36m[9], coco[0])
    # right side of H36M (1,2,3 / 14,15,16) comes from COCO's right joints (12,14,16 / 6,8,10)
    np.testing.assert_allclose(h36m[[1, 2, 3, 14, 15, 16]], coco[[12, 14, 16, 6, 8, 10]])
    np.testing.assert_allclose(h36m[[4, 5, 6, 11, 12, 13]], coco[[11, 13, 15, 5, 7, 9]])
    assert scores[0] == pytest.approx(min(np.linspace(0.5, 1.0, 17)[[11, 12]]))


def test_gaps_are_interpolated_linearly_and_edges_held():
    keypoints = np.zeros((5, 17, 2), dtype=np.float32)
    keypoints[:, :, 0] = np.arange(5)[:, None] * 10.0
    scores = np.ones((5, 17), dtype=np.float32)
    scores[2, 3] = 0.0  # low score in the middle
    keypoints[0, 4] = np.nan  # missing at the start
    filled, mask = fill_missing_joints(keypoints, scores, score_threshold=0.3)
    assert filled[2, 3, 0] == pytest.approx(20.0)
    assert filled[0, 4, 0] == pytest.approx(10.0)
    assert mask[2, 3] and mask[0, 4] and mask.sum() == 2


def test_joint_missing_too_often_is_refused_by_name(tmp_path):
    keypoints = _coco_frames(10)
    scores = np.ones((10, 17), dtype=np.float32)
    scores[:8, 9] = 0.05  # left wrist in 80 % of frames
    path = tmp_path / "bad.json"
    _write_coco_json(path, keypoints, scores)
    with pytest.raises(KeypointInputError, match="bad.json: left_wrist is missing .* 80%"):
        to_h36m_sequence(load_keypoints(path), max_missing_fraction=0.5)


def test_filled_mask_follows_derived_joints(tmp_path):
    keypoints = _coco_frames(6)
    scores = np.ones((6, 17), dtype=np.float32)
    scores[3, 11] = 0.0  # left hip missing in frame 3 -> pelvis, spine, left hip filled
    path = tmp_path / "track.npz"
    np.savez(path, keypoints=np.concatenate([keypoints, scores[..., None]], axis=-1))
    h36m, filled = to_h36m_sequence(load_keypoints(path))
    assert h36m.shape == (6, 17, 2) and np.isfinite(h36m).all()
    assert set(np.flatnonzero(filled[3])) == {0, 4, 7}
    assert not filled[[0, 1, 2, 4, 5]].any()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"no_keypoints": []}], "entry 0 has no 'keypoints'"),
        ([{"keypoints": [1.0] * 50}], "50 keypoint values"),
        ({"something": 1}, "expected a list"),
    ],
)
def test_malformed_json_is_named(tmp_path, content, message):
    path = tmp_path / "k.json"
    path.write_text(json.dumps(content))
    with pytest.raises(KeypointInputError, match=message):
        load_keypoints(path)


def test_malformed_npz_and_missing_file(tmp_path):
    with pytest.raises(KeypointInputError, match="not found"):
        load_keypoints(tmp_path / "none.npz")
    path = tmp_path / "k.npz"
    np.savez(path, points=np.zeros((3, 17, 2)))
    with pytest.raises(KeypointInputError, match="missing key 'keypoints'"):
        load_keypoints(path)
    np.savez(path, keypoints=np.zeros((3, 15, 2)))
    with pytest.raises(KeypointInputError, match=r"shape \(T, 17, 2\|3\)"):
        load_keypoints(path)
