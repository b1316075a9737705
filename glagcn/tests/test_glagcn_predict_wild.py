"""predict.py in the wild: video in (detector), any keypoint file in, bad files refused."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from glagcn_keypoint_samples import coco_to_openpose
from omegaconf import OmegaConf

from glagcn.keypoints import (
    KeypointInputError,
    KeypointSequence,
    ScoreRule,
    build_tracks,
    choose_track,
    read_detections,
    track_sequence,
)
from glagcn.lift import (
    ChunkCache,
    lift_prepared,
    lift_track,
    load_lifter,
    prepare_track,
    speculate_prepared,
    video_max_windows,
)
from glagcn.model import build_model
from glagcn.predict import predict
from glagcn.skeleton import H36M_17
from glagcn.smoothing import smooth_sequence
from glagcn.video_io import write_photo_clip
from trilab.safe_load import UnsafeFileError
from trilab.testing import exit_of_entry_point, run_to_completion, write_crafted_npz

PROJECT = Path(__file__).resolve().parents[1]
POSE = np.array(
    [
        [32, 10],
        [33, 9],
        [31, 9],
        [34, 10],
        [30, 10],
        [36, 16],
        [28, 16],
        [38, 22],
        [26, 22],
        [39, 28],
        [25, 28],
        [34, 30],
        [30, 30],
        [35, 38],
        [29, 38],
        [35, 45],
        [29, 45],
    ],
    dtype=float,
)


@pytest.fixture(scope="module")
def checkpoint(tiny_lifter_checkpoint):
    return tiny_lifter_checkpoint


def write_video(path, frames=4, size=(64, 48), fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, dtype=np.uint8)
        cv2.rectangle(image, (20 + i, 8), (44 + i, 46), (200, 180, 160), -1)
        writer.write(image)
    writer.release()
    return path


def config(**overrides):
    cfg = OmegaConf.load(PROJECT / "configs" / "predict.yaml")
    cfg.pop("hydra")
    return OmegaConf.merge(cfg, {"progress": False, **overrides})


@pytest.mark.slow
def test_video_in_3d_out_with_an_untrained_detector(tmp_path, checkpoint, capsys):
    video = write_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    # Untrained weights, every box kept: the whole path runs without a download.
    detector = {
        "detector": "keypoint_rcnn",
        "detector_weights": "random",
        "detector_score_threshold": 0.0,
        "detector_max_people": 2,
        "detector_min_size": 64,
        "detector_batch_size": 3,
        "detector_proposals": 10,
    }
    written = predict(
        config(video=str(video), checkpoint=str(checkpoint), output=str(out), **detector)
    )
    for name in (
        "detections_clip.npz",
        "data_2d_custom_clip.npz",
        "poses_3d.npz",
        "poses_3d.json",
        "lift.mp4",
        "lift_frames.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert written["keypoints_2d"].endswith("data_2d_custom_clip.npz")
    # the detections and the 2D track read back through the same readers as users' files
    raw = read_detections(out / "detections_clip.npz")
    assert raw.format == "detectron2" and sorted(raw.frames) == [0, 1, 2, 3]
    assert raw.image_size == (64, 48) and raw.num_detections > 0
    custom = read_detections(out / "data_2d_custom_clip.npz")
    assert custom.format == "videopose3d" and custom.image_size == (64, 48)
    assert sorted(custom.frames) == [0, 1, 2, 3]
    result = np.load(out / "poses_3d.npz")
    assert result["poses_3d"].shape[1:] == (17, 3) and float(result["fps"]) == pytest.approx(10)
    movie = cv2.VideoCapture(str(out / "lift.mp4"))
    assert int(movie.get(cv2.CAP_PROP_FRAME_COUNT)) == len(result["poses_3d"])
    movie.release()
    # reuse without detecting again: list the people of the saved detections
    capsys.readouterr()
    people = predict(
        config(
            input=str(out / "detections_clip.npz"),
            checkpoint=str(checkpoint),
            output=str(out / "again"),
            list_people=True,
        )
    )
    assert people["people"] and "person=ID" in capsys.readouterr().out


def test_video_where_nobody_is_detected(tmp_path, checkpoint, monkeypatch):
    import torch

    import glagcn.detect

    def finds_nobody(*args, **kwargs):
        def detector(images):
            return [
                {
                    "boxes": torch.zeros(0, 4),
                    "scores": torch.zeros(0),
                    "keypoints": torch.zeros(0, 17, 3),
                    "keypoints_scores": torch.zeros(0, 17),
                }
                for _ in images
            ]

        return detector

    monkeypatch.setattr(glagcn.detect, "build_detector", finds_nobody)
    video = write_video(tmp_path / "empty.mp4", frames=3)
    with pytest.raises(
        KeypointInputError,
        match="nobody was detected in .*empty.mp4.*lower detector_score_threshold",
    ):
        predict(
            config(
                video=str(video),
                checkpoint=str(checkpoint),
                output=str(tmp_path / "o"),
                detector="keypoint_rcnn",
            )
        )
    assert read_detections(tmp_path / "o" / "detections_empty.npz").num_detections == 0


def test_photo_clip_without_a_person_is_one_line_and_exit_2(tmp_path, checkpoint):
    """BlazePose, the CPU default, on a real photograph with nobody in it."""
    video = write_photo_clip(tmp_path / "coffee.mp4", skimage.data.coffee(), (320, 240), 3, 10)
    status, stderr = exit_of_entry_point(
        lambda: predict(
            config(video=str(video), checkpoint=str(checkpoint), output=str(tmp_path / "o"))
        ),
        "predict.py",
    )
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "nobody was detected in" in stderr and "BlazePose" in stderr
    assert read_detections(tmp_path / "o" / "detections_coffee.npz").num_detections == 0


@pytest.mark.slow
def test_cli_lifts_a_real_person_with_blazepose_by_default(tmp_path, checkpoint):
    """`predict.py video=clip.mp4 checkpoint=CKPT` on a CPU: BlazePose, smoothing, BVH."""
    video = write_photo_clip(tmp_path / "clip.mp4", skimage.data.astronaut(), (480, 270), 8, 10)
    out = tmp_path / "out"
    run_to_completion(
        [
            sys.executable,
            "predict.py",
            f"video={video}",
            f"checkpoint={checkpoint}",
            f"output={out}",
            "smooth=true",
            "render_format=gif",
            "progress=false",
        ],
        cwd=PROJECT,
    )
    raw = read_detections(out / "detections_clip.npz")
    assert raw.format == "detectron2" and sorted(raw.frames) == list(range(8))
    assert raw.num_detections == 8  # one person in every frame
    result = np.load(out / "poses_3d.npz")
    assert result["poses_3d"].shape == (8, 17, 3) and result["valid"].all()
    # the lifted 2D head lies on her face: inside the photograph's face region in every frame
    head = result["keypoints_2d"][:, 10]
    assert ((head[:, 0] > 100) & (head[:, 0] < 380) & (head[:, 1] > 20) & (head[:, 1] < 150)).all()
    assert (out / "lift.gif").is_file() and (out / "lift_frames.png").is_file()


def openpose_folder(folder, frames, absent=()):
    """OpenPose's --write_json folder: one BODY_25 file a frame, the person walking right."""
    folder.mkdir()
    walk = POSE[None] + np.arange(frames)[:, None, None] * np.array([0.5, 0.0])
    bodies = coco_to_openpose(walk, np.full((frames, 17), 0.8), joints=25)
    for frame in range(frames):
        people = []
        if frame not in absent:
            people = [{"person_id": [-1], "pose_keypoints_2d": bodies[frame].ravel().tolist()}]
        (folder / f"clip_{frame:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": people})
        )
    return folder


def test_openpose_folder_with_video_long_gap_is_nan(tmp_path, checkpoint):
    video = write_video(tmp_path / "clip.mp4", frames=30)
    folder = openpose_folder(tmp_path / "json", 30, absent=range(5, 25))
    out = tmp_path / "out"
    predict(
        config(
            input=str(folder),
            video=str(video),
            checkpoint=str(checkpoint),
            output=str(out),
            render_format="gif",
        )
    )
    payload = json.loads((out / "poses_3d.json").read_text())
    assert payload["format"] == "openpose" and payload["image_size"] == [64, 48]
    valid = [frame["valid"] for frame in payload["frames"]]
    assert valid == [True] * 5 + [False] * 20 + [True] * 5
    assert payload["frames"][10]["joints"] is None
    poses = np.load(out / "poses_3d.npz")["poses_3d"]
    assert np.isnan(poses[5:25]).all() and np.isfinite(poses[:5]).all()
    assert (out / "lift.gif").is_file()


def test_keypoint_file_errors_name_the_file_and_the_fix(tmp_path, checkpoint):
    folder = openpose_folder(tmp_path / "json", 4)
    with pytest.raises(KeypointInputError, match="json: the image size is unknown"):
        predict(config(input=str(folder), checkpoint=str(checkpoint), output=str(tmp_path / "o")))
    short = write_video(tmp_path / "short.mp4", frames=3)
    with pytest.raises(
        KeypointInputError,
        match=r"frame 3 is beyond the end of .*short.mp4 "
        r"\(3 frames\).*first_frame_id=1",
    ):
        predict(
            config(
                input=str(folder),
                video=str(short),
                checkpoint=str(checkpoint),
                output=str(tmp_path / "o"),
                render=False,
            )
        )
    with pytest.raises(KeypointInputError, match="there is no person 5"):
        predict(
            config(
                input=str(folder),
                checkpoint=str(checkpoint),
                output=str(tmp_path / "o"),
                image_width=64,
                image_height=48,
                person=5,
            )
        )
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, points=np.zeros((3, 17, 2)))
    with pytest.raises(KeypointInputError, match="wrong.npz: not a keypoint npz .*'keypoints'"):
        predict(config(input=str(wrong), checkpoint=str(checkpoint), output=str(tmp_path / "o")))


def crafted_npz(tmp_path):
    marker = tmp_path / "pwned"
    path = write_crafted_npz(
        tmp_path / "detections.npz", marker, "boxes", "keypoints", metadata={"w": 10, "h": 10}
    )
    assert not marker.exists()
    return path, marker


def test_crafted_detector_npz_is_refused_without_running_code(tmp_path, checkpoint):
    path, marker = crafted_npz(tmp_path)
    with pytest.raises(UnsafeFileError, match=r"detections.npz.*refused"):
        predict(config(input=str(path), checkpoint=str(checkpoint), output=str(tmp_path / "o")))
    assert not marker.exists()
    with pytest.raises(UnsafeFileError):
        read_detections(path, "detectron2")
    assert not marker.exists()


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path, checkpoint):
    path, marker = crafted_npz(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"input={path}",
            f"checkpoint={checkpoint}",
            f"output={tmp_path / 'o'}",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and "refused" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not marker.exists()


def test_lifting_overlapped_with_blazepose_gives_the_sequential_poses(tmp_path, checkpoint, capsys):
    """predict.py video=...: the chunks lifted while BlazePose runs (LiftAhead) and those
    lifted after give exactly the poses of detecting first and lifting after."""
    video = write_photo_clip(tmp_path / "clip.mp4", skimage.data.astronaut(), (480, 270), 48, 10)
    out = tmp_path / "out"
    predict(config(video=str(video), checkpoint=str(checkpoint), output=str(out), smooth=True))
    printed = capsys.readouterr().out
    lifted_ahead = re.search(r"lifted (\d+) of (\d+) chunks of windows during detection", printed)
    # 48 frames of a 9-frame model, 16 windows a call: chunks 0 and 1 are known by frame 37
    assert lifted_ahead and int(lifted_ahead[2]) == 3 and int(lifted_ahead[1]) >= 1, printed
    found = read_detections(out / "detections_clip.npz")
    sequence = track_sequence(found, choose_track(build_tracks(found), None, "clip"))
    model = load_lifter(checkpoint)
    sequential = lift_track(
        sequence,
        found.image_size,
        model,
        smooth=lambda keypoints: smooth_sequence(keypoints, 10.0),
        max_windows=video_max_windows("cpu", model.receptive_field),
    )
    result = np.load(out / "poses_3d.npz")
    assert result["valid"].all()
    np.testing.assert_array_equal(result["poses_3d"], sequential.poses_3d)
    np.testing.assert_array_equal(result["keypoints_2d"], sequential.keypoints_2d)


def test_chunk_cache_reuses_only_chunks_whose_input_is_unchanged(tiny_lifter_config):
    """A chunk lifted ahead from frames that later changed is lifted again: the poses are the
    plain model's (float64: exact whatever the kernels)."""
    model = build_model(tiny_lifter_config, H36M_17).double().eval()
    rng = np.random.default_rng(3)
    walk = POSE[None] * 10 + rng.normal(0, 2, (48, 17, 2)) + np.arange(48)[:, None, None]

    def prepared(keypoints):
        frames = len(keypoints)
        sequence = KeypointSequence(
            keypoints, np.ones((frames, 17)), np.arange(frames), "h36m17", ScoreRule("none")
        )
        return prepare_track(sequence)

    guessed = walk[:40].copy()
    guessed[30] += 5.0  # frame 30 came out otherwise in the end (e.g. a joint filled later)
    cache = ChunkCache(model)
    speculate_prepared(prepared(guessed), (640, 480), cache, max_windows=32)
    # 40 frames, 4 of look-ahead: windows 0-35 known, chunks 0 (windows 0-15) and 1 (16-31)
    assert len(cache._outputs) == 2
    final = prepared(walk)
    got = lift_prepared(final, (640, 480), cache, max_windows=32)
    plain = lift_prepared(final, (640, 480), model, max_windows=32)
    np.testing.assert_array_equal(got, plain)
    # chunk 0 (frames 0-19) reused; chunk 1 (frames 12-35 hold frame 30) and chunk 2 lifted
    assert (cache.hits, cache.misses) == (1, 2)
