"""Each reader on files written here in exactly the layout its tool writes (quirks included).

Writers looked up in the tools' sources: VideoPose3D ``data/prepare_data_2d_custom.py`` and
``inference/infer_video_d2.py``, detectron2 ``heatmaps_to_keypoints``, AlphaPose
``alphapose/utils/pPose_nms.py: write_json``, OpenPose ``doc/output.md``, MMPose
``base_mmpose_inferencer.py`` / ``split_instances``.
"""

import json

import numpy as np
import pytest
from glagcn_keypoint_samples import STANDING_COCO_POSE, coco_to_openpose

from glagcn.keypoints import (
    FORMATS,
    LAYOUTS,
    KeypointInputError,
    ReadOptions,
    build_tracks,
    get_layout,
    load_track,
    prepare_h36m,
    read_detections,
    to_h36m,
    to_h36m_sequence,
)
from glagcn.keypoints.layouts import H36M_PELVIS, H36M_SPINE, H36M_THORAX
from glagcn.skeleton import H36M_17
from trilab.errors import UserError

WIDTH, HEIGHT = 1280, 720


def sequence_of(path, person=None, **options):
    """The chosen person's sequence, as ``predict`` reads it (``options``: ReadOptions fields)."""
    return load_track(path, options=ReadOptions(**options), person=person)[0]


def coco_track(frames=12, shift=(0.0, 0.0), scale=1.0, seed=0):
    """(T, 17, 2) pixels of a person walking right, and (T, 17) heatmap-like scores."""
    rng = np.random.default_rng(seed)
    centre = STANDING_COCO_POSE.mean(axis=0)
    pose = (STANDING_COCO_POSE - centre) * scale + centre + np.asarray(shift)
    walk = np.arange(frames)[:, None, None] * np.array([4.0, 0.0])
    keypoints = pose[None] + walk + rng.normal(0, 1.0, (frames, 17, 2))
    scores = rng.uniform(0.6, 0.95, (frames, 17))
    return keypoints, scores


def box_xyxy(points, margin=10.0):
    return np.concatenate([points.min(0) - margin, points.max(0) + margin])


def coco_to_halpe(keypoints, scores):
    head = keypoints[:, [1, 2]].mean(1) + np.array([0, -40.0])
    neck = keypoints[:, [5, 6]].mean(1)
    hip = keypoints[:, [11, 12]].mean(1)
    feet = np.repeat(keypoints[:, [15, 16]], 3, axis=1) + np.array([8.0, 12.0])
    extra = np.concatenate([head[:, None], neck[:, None], hip[:, None], feet], axis=1)
    extra_scores = np.full(extra.shape[:2], 0.8)
    return (np.concatenate([keypoints, extra], 1), np.concatenate([scores, extra_scores], 1))


# --- VideoPose3D data_2d_custom ---------------------------------------------------------------


def write_data_2d_custom(path, videos):
    """As prepare_data_2d_custom.py: suggest_metadata('coco') + video_metadata, savez_compressed
    of two dicts (numpy stores them as pickled 0-d object arrays)."""
    metadata = {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
        "video_metadata": {},
    }
    output = {}
    for name, keypoints in videos.items():
        output[name] = {"custom": [keypoints.astype("float32")]}
        metadata["video_metadata"][name] = {"w": WIDTH, "h": HEIGHT}
    np.savez_compressed(path, positions_2d=output, metadata=metadata)


def test_videopose3d_custom_file(tmp_path):
    keypoints, _ = coco_track(20)
    path = tmp_path / "data_2d_custom_myvideos.npz"
    write_data_2d_custom(path, {"clip": keypoints})
    detections = read_detections(path)
    assert detections.format == "videopose3d" and detections.layout == "coco17"
    assert detections.image_size == (WIDTH, HEIGHT)
    sequence = sequence_of(path)
    np.testing.assert_allclose(sequence.keypoints, keypoints, rtol=1e-5)
    np.testing.assert_array_equal(sequence.frame_indices, np.arange(20))
    # VideoPose3D's files carry no scores: nothing is "missing", every frame lifts
    h36m, filled = to_h36m_sequence(sequence)
    assert np.isfinite(h36m).all() and not filled.any()


def test_videopose3d_file_with_several_videos_asks_which(tmp_path):
    path = tmp_path / "data_2d_custom_two.npz"
    write_data_2d_custom(path, {"walk": coco_track(5)[0], "jump": coco_track(7)[0]})
    with pytest.raises(KeypointInputError, match=r"2 videos: \['jump', 'walk'\].*video_name="):
        read_detections(path)
    sequence = sequence_of(path, video_name="jump")
    assert len(sequence.keypoints) == 7
    with pytest.raises(KeypointInputError, match="no video_name='run'"):
        sequence_of(path, video_name="run")


def test_videopose3d_wrong_joint_count_and_dataset_file(tmp_path):
    path = tmp_path / "data_2d_custom_bad.npz"
    write_data_2d_custom(path, {"clip": np.zeros((4, 15, 2))})
    with pytest.raises(KeypointInputError, match=r"data_2d_custom_bad.npz.*\(4, 15, 2\)"):
        read_detections(path)
    dataset = tmp_path / "data_2d_h36m_gt.npz"  # subject -> action -> cameras: not in the wild
    np.savez_compressed(
        dataset,
        positions_2d={"S1": {"Walking": [np.zeros((3, 17, 2))]}},
        metadata={"layout_name": "h36m", "num_joints": 17},
    )
    with pytest.raises(KeypointInputError, match="no 'custom' entry"):
        read_detections(dataset)


# --- VideoPose3D's detectron2 per-video npz ----------------------------------------------------


def write_detectron_npz(path, frames):
    """As infer_video_d2.py: per frame cls_boxes = [[], (N, 5)] and cls_keyps = [[], (N, 4, 17)]
    with rows x, y, logit (a dummy 0), prob; [[], []] for an empty frame; segments None.  The
    script's np.savez_compressed turned these ragged lists into (T, 2) object arrays (numpy < 1.24
    did so silently; newer numpy needs dtype=object, as here)."""
    boxes = np.empty((len(frames), 2), dtype=object)
    keyps = np.empty((len(frames), 2), dtype=object)
    for i, people in enumerate(frames):
        boxes[i, 0], keyps[i, 0] = [], []
        if not people:
            boxes[i, 1], keyps[i, 1] = [], []
            continue
        boxes[i, 1] = np.stack([np.append(box_xyxy(kp), score) for kp, _, score in people])
        keyps[i, 1] = np.stack(
            [np.stack([kp[:, 0], kp[:, 1], np.zeros(17), prob]) for kp, prob, _ in people]
        ).astype(np.float32)
    np.savez_compressed(
        path,
        boxes=boxes,
        segments=np.array([None] * len(frames), dtype=object),
        keypoints=keyps,
        metadata={"w": WIDTH, "h": HEIGHT},
    )


def test_detectron2_npz_several_people_empty_frames_and_softmax_scores(tmp_path):
    main, _ = coco_track(10)
    small, _ = coco_track(10, shift=(-400, 50), scale=0.5, seed=1)
    # detectron2's "prob" is a spatial softmax: good joints score around 0.02-0.2
    prob = np.random.default_rng(2).uniform(0.02, 0.2, (10, 17))
    frames = [[(main[i], prob[i], 0.99), (small[i], prob[i], 0.9)] for i in range(10)]
    frames[4] = []  # nobody detected in frame 4
    frames[6] = [(small[6], prob[6], 0.9), (main[6], prob[6], 0.99)]  # order swapped
    path = tmp_path / "clip.mp4.npz"
    write_detectron_npz(path, frames)
    detections = read_detections(path)
    assert detections.format == "detectron2" and detections.image_size == (WIDTH, HEIGHT)
    assert detections.frames[4] == [] and len(detections.frames[0]) == 2
    assert detections.score_rule.kind == "none"
    sequence, tracks, _ = load_track(path)
    assert len(tracks) == 2
    present = sequence.present
    assert present.tolist() == [True] * 4 + [False] + [True] * 5
    np.testing.assert_allclose(sequence.keypoints[6], main[6], rtol=1e-5)  # linked by overlap
    prepared = prepare_h36m(sequence)
    assert prepared.valid.all() and not prepared.filled[[0, 5, 9]].any()
    assert prepared.filled[4].all()  # the empty frame is interpolated
    # a fixed 0.3 threshold would call these good joints missing
    with pytest.raises(KeypointInputError, match="is missing"):
        prepare_h36m(sequence, score_rule=detections.score_rule.__class__("absolute", 0.3))


def test_detectron2_npz_bad_layout(tmp_path):
    path = tmp_path / "bad.npz"
    boxes = np.empty((1, 2), dtype=object)
    keyps = np.empty((1, 2), dtype=object)
    boxes[0, 0] = keyps[0, 0] = []
    boxes[0, 1] = np.array([[0, 0, 10, 10, 0.9]])
    keyps[0, 1] = np.zeros((1, 4, 15))
    np.savez(path, boxes=boxes, keypoints=keyps, metadata={"w": 10, "h": 10})
    with pytest.raises(KeypointInputError, match="bad.npz: frame 0: 15 keypoints"):
        read_detections(path)


# --- AlphaPose ---------------------------------------------------------------------------------


def alphapose_entry(frame, keypoints, scores, idx, name_pattern="{}.jpg"):
    """As write_json: image_id = the frame's file name, keypoints flat [x, y, score] * J,
    score = proposal score (mean + detector score + 1.25 max, often > 1), box [x, y, w, h],
    idx = the track id with --pose_track, else a placeholder list."""
    box = box_xyxy(keypoints)
    return {
        "image_id": name_pattern.format(frame),
        "category_id": 1,
        "keypoints": np.concatenate([keypoints, scores[:, None]], 1).ravel().tolist(),
        "score": float(scores.mean() + 0.95 + 1.25 * scores.max()),
        "box": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
        "idx": idx,
    }


def test_alphapose_coco17_without_tracking(tmp_path):
    main, main_scores = coco_track(8)
    small, small_scores = coco_track(8, shift=(-400, 50), scale=0.5, seed=1)
    entries = []
    for i in range(8):
        if i == 3:
            continue  # AlphaPose lists only frames with people
        people = [(small, small_scores), (main, main_scores)]
        for keypoints, scores in people if i % 2 else people[::-1]:
            entries.append(alphapose_entry(i, keypoints[i], scores[i], [0.0]))
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(entries))
    detections = read_detections(path)
    assert detections.format == "alphapose" and detections.layout == "coco17"
    tracks = build_tracks(detections)
    assert len(tracks) == 2 and not tracks[0].from_file  # [0.0] is no track id
    sequence, _, _ = load_track(path)
    np.testing.assert_allclose(
        sequence.keypoints[sequence.present], np.delete(main, 3, 0), rtol=1e-5
    )
    assert not sequence.present[3]


def test_alphapose_halpe26_with_tracking_ids(tmp_path):
    a, a_scores = coco_to_halpe(*coco_track(6))
    b, b_scores = coco_to_halpe(*coco_track(6, shift=(-300, 0), seed=3))
    entries = []
    for i in range(6):
        # the two people swap places halfway; only the tracker's idx keeps them apart
        first, second = (a, b) if i < 3 else (b, a)
        entries.append(alphapose_entry(i, first[i], a_scores[i], 7))
        entries.append(alphapose_entry(i, second[i], b_scores[i], 9))
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(entries))
    detections = read_detections(path)
    assert detections.layout == "halpe26"
    tracks = build_tracks(detections)
    assert sorted(t.track_id for t in tracks) == [7, 9] and all(t.from_file for t in tracks)
    sequence = sequence_of(path, person=9)
    np.testing.assert_allclose(sequence.keypoints[:3], b[:3], rtol=1e-5)
    np.testing.assert_allclose(sequence.keypoints[3:], a[3:], rtol=1e-5)
    h36m, _ = to_h36m(get_layout("halpe26"), a, a_scores)
    np.testing.assert_allclose(h36m[:, 10], a[:, 17])  # head = Halpe's Head
    np.testing.assert_allclose(h36m[:, 0], a[:, 19])  # pelvis = Halpe's Hip
    with pytest.raises(KeypointInputError, match="no person 3; the people found are 7, 9"):
        sequence_of(path, person=3)


def test_image_ids_as_file_names_counted_from_one(tmp_path):
    keypoints, scores = coco_track(5)
    entries = [
        alphapose_entry(i + 1, keypoints[i], scores[i], [0.0], "frame_{:04d}.jpg") for i in range(5)
    ]
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(entries))
    assert sequence_of(path).frame_indices.tolist() == [1, 2, 3, 4, 5]
    assert sequence_of(path, first_frame_id=1).frame_indices.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(KeypointInputError, match="comes before first_frame_id=2"):
        sequence_of(path, first_frame_id=2)


# --- OpenPose ----------------------------------------------------------------------------------


def write_openpose_folder(folder, video, people_per_frame, joints=25):
    """As --write_json: <video>_<frame:012d>_keypoints.json per frame, counted from 0."""
    folder.mkdir(exist_ok=True)
    for frame, people in enumerate(people_per_frame):
        content = {
            "version": 1.3,
            "people": [
                {
                    "person_id": [-1],
                    "pose_keypoints_2d": person.ravel().tolist(),
                    "face_keypoints_2d": [],
                    "hand_left_keypoints_2d": [],
                    "hand_right_keypoints_2d": [],
                    "pose_keypoints_3d": [],
                    "face_keypoints_3d": [],
                    "hand_left_keypoints_3d": [],
                    "hand_right_keypoints_3d": [],
                }
                for person in people
            ],
        }
        (folder / f"{video}_{frame:012d}_keypoints.json").write_text(json.dumps(content))


@pytest.mark.parametrize("joints", [25, 18])
def test_openpose_folder(tmp_path, joints):
    person = coco_to_openpose(*coco_track(6), joints)
    person[2, 4] = 0.0  # right wrist not found in frame 2: written as 0, 0, 0
    frames = [[person[i]] for i in range(6)]
    frames[5] = []  # nobody in the last frame
    write_openpose_folder(tmp_path / "json", "clip", frames, joints)
    detections = read_detections(tmp_path / "json")
    assert detections.format == "openpose"
    assert detections.layout == ("body25" if joints == 25 else "coco18")
    assert detections.frames[5] == []
    sequence = sequence_of(tmp_path / "json")
    assert np.isnan(sequence.keypoints[2, 4]).all() and len(sequence.keypoints) == 5
    h36m, filled = to_h36m_sequence(sequence)
    assert filled[2, 16] and not filled[1, 16]  # H36M right wrist interpolated in frame 2
    np.testing.assert_allclose(h36m[3, 8], person[3, 1, :2], rtol=1e-5)  # thorax = Neck
    pelvis = person[3, 8, :2] if joints == 25 else person[3, [8, 11], :2].mean(0)
    np.testing.assert_allclose(h36m[3, 0], pelvis, rtol=1e-5)
    # one frame file given: its video's frames are read
    assert len(sequence_of(tmp_path / "json" / "clip_000000000001_keypoints.json").keypoints) == 5


def test_openpose_folder_of_two_videos_and_normalised_coordinates(tmp_path):
    person = coco_to_openpose(*coco_track(3), 25)
    write_openpose_folder(tmp_path / "json", "a", [[p] for p in person])
    write_openpose_folder(tmp_path / "json", "b", [[p] for p in person])
    with pytest.raises(KeypointInputError, match=r"several videos: \['a', 'b'\]"):
        read_detections(tmp_path / "json")
    assert len(sequence_of(tmp_path / "json", video_name="b").keypoints) == 3
    scaled = person.copy()
    scaled[..., :2] /= 2000.0  # --keypoint_scale 3: [0, 1]
    write_openpose_folder(tmp_path / "norm", "c", [[p] for p in scaled])
    with pytest.raises(KeypointInputError, match="keypoint_scale 0"):
        read_detections(tmp_path / "norm")
    bad = tmp_path / "odd"
    write_openpose_folder(bad, "d", [[np.zeros((20, 3)) + 5]])
    with pytest.raises(KeypointInputError, match="d_000000000000_keypoints.json: people.0. has 60"):
        read_detections(bad)


def test_alphapose_open_format_single_file(tmp_path):
    person = coco_to_openpose(*coco_track(4), 18)
    content = {
        f"{i}.jpg": {
            "version": "AlphaPose v0.3",
            "people": [{"pose_keypoints_2d": person[i].ravel().tolist()}],
        }
        for i in range(4)
    }
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(content))
    detections = read_detections(path)
    assert detections.format == "openpose" and detections.layout == "coco18"
    assert sorted(detections.frames) == [0, 1, 2, 3]


# --- MMPose ------------------------------------------------------------------------------------


def mmpose_instance(keypoints, scores, nested_bbox=True):
    box = box_xyxy(keypoints).tolist()
    return {
        "keypoints": keypoints.tolist(),
        "keypoint_scores": scores.tolist(),
        "bbox": [box] if nested_bbox else box,
        "bbox_score": 0.97,
    }


@pytest.mark.parametrize("nested_bbox", [True, False])
def test_mmpose_video_predictions(tmp_path, nested_bbox):
    main, scores = coco_track(6)
    small, small_scores = coco_track(6, shift=(-400, 50), scale=0.5, seed=1)
    predictions = [
        {
            "frame_id": i,
            "instances": [
                mmpose_instance(small[i], small_scores[i], nested_bbox),
                mmpose_instance(main[i], scores[i], nested_bbox),
            ],
        }
        for i in range(6)
    ]
    predictions[2]["instances"] = []
    path = tmp_path / "clip.json"
    path.write_text(json.dumps(predictions, indent=2))  # mmengine.dump(..., indent='  ')
    detections = read_detections(path)
    assert detections.format == "mmpose" and detections.frames[2] == []
    sequence = sequence_of(path)
    np.testing.assert_allclose(sequence.keypoints[0], main[0], rtol=1e-5)
    assert sequence.present.tolist() == [True, True, False, True, True, True]


def test_mmpose_wrong_keypoint_count(tmp_path):
    path = tmp_path / "hand.json"
    path.write_text(
        json.dumps(
            [
                {
                    "frame_id": 0,
                    "instances": [{"keypoints": [[1.0, 2.0]] * 21, "keypoint_scores": [0.9] * 21}],
                }
            ]
        )
    )
    with pytest.raises(KeypointInputError, match=r"hand.json: frame_id 0 instance 0: 21 keypoints"):
        read_detections(path)


# --- format detection and override -------------------------------------------------------------


def test_format_override_and_unknown_format(tmp_path):
    keypoints, scores = coco_track(3)
    entries = [alphapose_entry(i, keypoints[i], scores[i], [0.0]) for i in range(3)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(entries))
    assert read_detections(path).format == "alphapose"
    assert read_detections(path, "coco_json").format == "coco_json"
    with pytest.raises(KeypointInputError, match="unknown format='csv'"):
        read_detections(path, "csv")
    with pytest.raises(KeypointInputError, match="expected an OpenPose folder or frame file"):
        read_detections(path, "openpose", ReadOptions())
    with pytest.raises(UserError, match="results.json is not an .npz archive"):
        read_detections(path, "detectron2")


def test_empty_alphapose_file_says_nobody_was_found(tmp_path):
    path = tmp_path / "alphapose-results.json"
    path.write_text("[]")
    with pytest.raises(
        KeypointInputError, match="alphapose-results.json: the file lists no detections"
    ):
        read_detections(path)


def _write_coco_results(path, keypoints, scores, weaker_second_person=False):
    entries = []
    for frame, (points, score) in enumerate(zip(keypoints, scores, strict=True)):
        flat = np.concatenate([points, score[:, None]], axis=1).ravel().tolist()
        entries.append({"image_id": frame, "category_id": 1, "keypoints": flat, "score": 0.9})
        if weaker_second_person:
            entries.append({"image_id": frame, "keypoints": [0.0] * 51, "score": 0.1})
    path.write_text(json.dumps(entries))


def test_coco_results_list_keeps_the_best_person_per_frame(tmp_path):
    keypoints, _ = coco_track(frames=6)
    path = tmp_path / "track.json"
    _write_coco_results(path, keypoints, np.full((6, 17), 0.8), weaker_second_person=True)
    sequence = sequence_of(path)
    assert sequence.layout == "coco17"
    np.testing.assert_allclose(sequence.keypoints, keypoints, rtol=1e-5)
    np.testing.assert_array_equal(sequence.frame_indices, np.arange(6))


def test_coco_layout_maps_onto_h36m_with_derived_joints():
    coco = STANDING_COCO_POSE.astype(np.float32)
    scores = np.linspace(0.5, 1.0, 17).astype(np.float32)
    h36m, h36m_scores = to_h36m(get_layout("coco17"), coco, scores)
    pelvis, thorax = (coco[11] + coco[12]) / 2, (coco[5] + coco[6]) / 2
    np.testing.assert_allclose(h36m[0], pelvis)
    np.testing.assert_allclose(h36m[8], thorax)
    np.testing.assert_allclose(h36m[7], (pelvis + thorax) / 2)
    np.testing.assert_allclose(h36m[10], (coco[1] + coco[2]) / 2)
    np.testing.assert_allclose(h36m[9], coco[0])
    # H36M's right side (1, 2, 3 / 14, 15, 16) from COCO's right joints (12, 14, 16 / 6, 8, 10)
    np.testing.assert_allclose(h36m[[1, 2, 3, 14, 15, 16]], coco[[12, 14, 16, 6, 8, 10]])
    np.testing.assert_allclose(h36m[[4, 5, 6, 11, 12, 13]], coco[[11, 13, 15, 5, 7, 9]])
    assert h36m_scores[0] == pytest.approx(scores[[11, 12]].min())  # weakest source


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"no_keypoints": []}], "entry 0 has no 'keypoints'"),
        ([{"keypoints": [1.0] * 50}], "50 keypoint values"),
        ({"something": 1}, "expected one of: a list"),
    ],
)
def test_malformed_coco_json_is_named(tmp_path, content, message):
    path = tmp_path / "k.json"
    path.write_text(json.dumps(content))
    with pytest.raises(KeypointInputError, match=message):
        sequence_of(path)


def test_malformed_native_npz_and_missing_file(tmp_path):
    with pytest.raises(KeypointInputError, match="not found"):
        sequence_of(tmp_path / "none.npz")
    path = tmp_path / "k.npz"
    np.savez(path, points=np.zeros((3, 17, 2)))
    with pytest.raises(
        KeypointInputError, match=r"k.npz: .* key 'keypoints' without 'boxes' \(npz\)"
    ):
        sequence_of(path)
    np.savez(path, keypoints=np.zeros((3, 15, 2)))
    with pytest.raises(KeypointInputError, match=r"shape \(T, 17, 2\|3\)"):
        sequence_of(path)


# The detector -> H36M tables as they were written out by index before layouts.py derived them
# from the joint names (per H36M joint in its order; the spine, 7, has no source).
FROZEN_TO_H36M = {
    "coco17": ((11, 12), 12, 14, 16, 11, 13, 15, (), (5, 6), 0, (1, 2), 5, 7, 9, 6, 8, 10),
    "halpe26": (19, 12, 14, 16, 11, 13, 15, (), 18, 0, 17, 5, 7, 9, 6, 8, 10),
    "body25": (8, 9, 10, 11, 12, 13, 14, (), 1, 0, (15, 16), 5, 6, 7, 2, 3, 4),
    "coco18": ((8, 11), 8, 9, 10, 11, 12, 13, (), 1, 0, (14, 15), 5, 6, 7, 2, 3, 4),
}


@pytest.mark.parametrize("name", sorted(FROZEN_TO_H36M))
def test_joint_maps_derived_from_names_equal_the_index_tables(name):
    frozen = tuple(v if isinstance(v, tuple) else (v,) for v in FROZEN_TO_H36M[name])
    assert LAYOUTS[name].to_h36m == frozen
    assert LAYOUTS["wholebody133"].to_h36m == LAYOUTS["coco17"].to_h36m
    assert LAYOUTS["h36m17"].to_h36m == tuple((j,) for j in range(17))
    assert (H36M_SPINE, H36M_PELVIS, H36M_THORAX) == (7, 0, 8)
    with pytest.raises(ValueError, match="h36m17 has no joint 'hip'"):
        H36M_17.joint("hip")


def test_detection_order_and_unrecognised_npz_names_every_npz_format(tmp_path):
    # alphapose before coco_json: an AlphaPose file is a COCO results list too
    assert list(FORMATS) == [
        "alphapose",
        "coco_json",
        "mmpose",
        "npz",
        "openpose",
        "videopose3d",
        "detectron2",
    ]
    path = tmp_path / "other.npz"
    np.savez(path, points=np.zeros(3))
    with pytest.raises(KeypointInputError) as caught:
        read_detections(path)
    message = str(caught.value)
    for name in (f.name for f in FORMATS.values() if ".npz" in f.inputs):
        assert f"({name})" in message
    assert "found keys ['points']" in message
    table = tmp_path / "k.csv"
    table.write_text("x,y\n")
    with pytest.raises(KeypointInputError, match=r"'\.csv' \(expected \.json, \.npz or a folder\)"):
        read_detections(table)
