"""Which person, which frames: tracks, gaps, missing joints, image size."""

import json

import numpy as np
import pytest
from glagcn_keypoint_samples import STANDING_COCO_POSE

from glagcn.keypoints import (
    Detection,
    DetectionSet,
    KeypointInputError,
    KeypointSequence,
    ScoreRule,
    build_tracks,
    choose_track,
    describe_tracks,
    load_track,
    prepare_h36m,
    to_h36m_sequence,
    track_sequence,
)
from glagcn.keypoints.tracking import box_iou
from glagcn.predict import resolve_image_size
from glagcn.video_io import VideoInfo
from trilab.errors import UserError

POSE = STANDING_COCO_POSE.astype(np.float32)


def person(frame, dx=0.0, scale=1.0, score=0.9, track_id=None):
    keypoints = (POSE - POSE.mean(0)) * scale + POSE.mean(0) + np.array([dx + 3 * frame, 0])
    return Detection(
        keypoints.astype(np.float32), np.full(17, score, np.float32), track_id=track_id
    )


def detection_set(frames, **kwargs):
    return DetectionSet(
        "clip.json",
        "coco_json",
        "coco17",
        frames,
        ScoreRule("absolute", 0.3),
        "test scores",
        **kwargs,
    )


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_overlap_links_people_whatever_their_order_and_ranks_by_visibility():
    frames = {}
    for f in range(10):
        people = [person(f), person(f, dx=-450, scale=0.5)]
        frames[f] = people[::-1] if f % 3 == 0 else people
    tracks = build_tracks(detection_set(frames))
    assert len(tracks) == 2
    big, small = tracks
    assert big.visibility > small.visibility and big.track_id == 0
    assert all(d.keypoints[0, 0] > 500 for d in big.detections)
    assert choose_track(tracks, None, "x") is big and choose_track(tracks, 1, "x") is small
    table = describe_tracks(tracks)
    assert "0 *" in table and "0-9" in table and "person=ID" in table


def test_a_person_leaving_for_longer_than_the_link_gap_starts_a_new_track():
    frames = {f: ([person(0)] if f < 5 or f > 30 else []) for f in range(40)}  # standing still
    tracks = build_tracks(detection_set(frames), max_link_gap=10)
    assert sorted(len(t.frames) for t in tracks) == [5, 9]
    tracks = build_tracks(detection_set(frames), max_link_gap=30)
    assert len(tracks) == 1


def test_short_gaps_interpolated_long_gaps_invalid_with_a_message():
    frames = {f: [person(f)] for f in range(60)}
    for f in (10, 11, 12):
        frames[f] = []  # 3 frames: interpolated
    for f in range(20, 40):
        frames[f] = []  # 20 frames > max_gap 15: invalid
    data = detection_set(frames)
    tracks = build_tracks(data, max_link_gap=30)
    sequence = track_sequence(data, tracks[0])
    prepared = prepare_h36m(sequence, max_gap_frames=15)
    assert prepared.valid[:20].all() and not prepared.valid[20:40].any()
    assert prepared.valid[40:].all()
    assert prepared.segments == [(0, 20), (40, 60)]
    assert np.isnan(prepared.keypoints[25]).all() and np.isfinite(prepared.keypoints[11]).all()
    # pelvis x moves 3 px per frame: the gap is filled on that line
    assert prepared.keypoints[11, 0, 0] == pytest.approx(prepared.keypoints[9, 0, 0] + 6, abs=1e-3)
    joined = " ".join(prepared.messages)
    assert "frames 20-39 (20 frames)" in joined and "marked invalid" in joined
    assert "1 short gap(s)" in joined


def test_only_the_joints_the_mapping_uses_can_refuse_a_track():
    keypoints = np.stack([person(f).keypoints for f in range(10)])
    scores = np.full((10, 17), 0.9, dtype=np.float32)
    scores[:, 3] = 0.0  # left ear never seen: not part of H36M-17, fine
    sequence = KeypointSequence(keypoints, scores, np.arange(10), "coco17", "ears.npz")
    assert prepare_h36m(sequence).valid.all()
    scores[:8, 10] = 0.0  # right wrist in 80 % of the frames
    sequence = KeypointSequence(keypoints, scores, np.arange(10), "coco17", "wrist.npz")
    with pytest.raises(
        KeypointInputError, match="wrist.npz: right_wrist is missing .* 80% of the 10 frames"
    ):
        prepare_h36m(sequence)


def test_a_missing_joint_is_interpolated_on_its_line_and_held_at_the_edges():
    keypoints = np.stack([person(f).keypoints for f in range(5)])
    scores = np.full((5, 17), 0.9, dtype=np.float32)
    scores[2, 13] = 0.0  # left knee (H36M 5) weak in the middle frame
    keypoints[0, 16] = np.nan  # right ankle (H36M 3) without coordinates in the first frame
    prepared = prepare_h36m(KeypointSequence(keypoints, scores, np.arange(5), "coco17"))
    # the person moves 3 px a frame: the filled knee lies on that line, the ankle is held
    np.testing.assert_allclose(prepared.keypoints[2, 5], person(2).keypoints[13], atol=1e-4)
    np.testing.assert_allclose(prepared.keypoints[0, 3], person(1).keypoints[16], atol=1e-4)
    assert set(zip(*np.nonzero(prepared.filled), strict=True)) == {(2, 5), (0, 3)}


def test_filled_mask_follows_the_joints_derived_from_a_missing_one():
    keypoints = np.stack([person(f).keypoints for f in range(6)])
    scores = np.full((6, 17), 0.9, dtype=np.float32)
    scores[3, 11] = 0.0  # left hip: H36M pelvis and spine are made from it too
    h36m, filled = to_h36m_sequence(KeypointSequence(keypoints, scores, np.arange(6), "coco17"))
    assert h36m.shape == (6, 17, 2) and np.isfinite(h36m).all()
    assert set(np.flatnonzero(filled[3])) == {0, 4, 7}
    assert not filled[[0, 1, 2, 4, 5]].any()


def test_relative_rule_scales_with_the_track():
    keypoints = np.stack([person(f).keypoints for f in range(6)])
    scores = np.full((6, 17), 0.05, dtype=np.float32)  # softmax-like: small but fine
    scores[2, 9] = 0.001  # one weak left wrist
    sequence = KeypointSequence(keypoints, scores, np.arange(6), "coco17")
    prepared = prepare_h36m(sequence, ScoreRule("relative", 0.2))
    assert prepared.filled[2, 13] and prepared.filled.sum() == 1
    with pytest.raises(KeypointInputError, match="relative needs positive scores"):
        prepare_h36m(
            KeypointSequence(keypoints, -scores, np.arange(6), "coco17"), ScoreRule("relative", 0.2)
        )


def test_empty_track_is_refused():
    data = detection_set({0: [], 1: []})
    with pytest.raises(KeypointInputError, match="clip.json: no person was detected"):
        choose_track(build_tracks(data), None, data.source)


def test_image_size_from_metadata_then_video_then_user(capsys):
    video = VideoInfo(
        path=__import__("pathlib").Path("clip.mp4"), width=640, height=360, fps=30.0, frame_count=10
    )
    with_size = detection_set({0: [person(0)]}, image_size=(1920, 1080))
    without = detection_set({0: [person(0)]})
    assert resolve_image_size(with_size, video, 800, 600)[0] == (1920, 1080)
    assert "ignored" in capsys.readouterr().out
    assert resolve_image_size(without, video, None, None) == ((640, 360), "the video clip.mp4")
    assert resolve_image_size(without, None, 800, 600)[0] == (800, 600)
    with pytest.raises(
        KeypointInputError,
        match="clip.json: the image size is unknown.*video=VIDEO.*image_width=W image_height=H",
    ):
        resolve_image_size(without, None, None, None)
    with pytest.raises(UserError, match="both image_width and image_height"):
        resolve_image_size(without, None, 800, None)


def test_coco_json_tracks_keep_frame_numbers(tmp_path):
    entries = [
        {
            "image_id": f,
            "category_id": 1,
            "score": 0.9,
            "keypoints": np.concatenate([person(f).keypoints, np.full((17, 1), 0.9)], 1)
            .ravel()
            .tolist(),
        }
        for f in (5, 6, 8)
    ]
    path = tmp_path / "k.json"
    path.write_text(json.dumps(entries))
    sequence, _, _ = load_track(path)
    assert sequence.frame_indices.tolist() == [5, 6, 7, 8]
    assert sequence.present.tolist() == [True, True, False, True]
