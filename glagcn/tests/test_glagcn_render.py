import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from glagcn.render import RenderError, plot_training_curves, render_frames_png, render_sequence

H36M = SimpleNamespace(
    parents=[-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15],
    joints_left=[4, 5, 6, 11, 12, 13],
    joints_right=[1, 2, 3, 14, 15, 16],
)


def _sequence(n=6):
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.3, size=(n, 17, 3)).astype(np.float32)
    poses[:, :, 2] += 4.0
    keypoints = poses[..., :2] / poses[..., 2:] * 1000 + 500
    return keypoints, poses


def test_mp4_and_gif_have_one_frame_per_pose(tmp_path):
    keypoints, poses = _sequence()
    mp4 = render_sequence(keypoints, poses, H36M, tmp_path / "lift.mp4", image_size=(1000, 1000))
    capture = cv2.VideoCapture(str(mp4))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    gif = render_sequence(keypoints, poses, H36M, tmp_path / "lift.gif")
    assert Image.open(gif).n_frames == 6


def test_video_background(tmp_path):
    keypoints, poses = _sequence(4)
    video = tmp_path / "input.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for value in range(6):
        writer.write(np.full((48, 64, 3), value * 40, dtype=np.uint8))
    writer.release()
    out = render_sequence(
        keypoints / 1000 * 64,
        poses,
        H36M,
        tmp_path / "over.mp4",
        image_size=(64, 48),
        frame_indices=np.array([0, 2, 3, 5]),
        video_path=video,
    )
    assert out.stat().st_size > 0
    with pytest.raises(RenderError, match="ends before frame 9"):
        render_sequence(
            keypoints,
            poses,
            H36M,
            tmp_path / "x.mp4",
            frame_indices=np.array([0, 1, 2, 9]),
            video_path=video,
        )


def test_png_of_selected_frames(tmp_path):
    keypoints, poses = _sequence()
    png = render_frames_png(keypoints, poses, H36M, tmp_path / "frames.png", n_frames=3)
    assert Image.open(png).size == (960, 3 * 480)
    with pytest.raises(RenderError, match="outside the sequence"):
        render_frames_png(keypoints, poses, H36M, tmp_path / "f.png", frames=[10])


def test_mismatched_inputs_are_refused(tmp_path):
    keypoints, poses = _sequence()
    with pytest.raises(RenderError, match="6 frames of 2D keypoints but 5"):
        render_sequence(keypoints, poses[:5], H36M, tmp_path / "a.mp4")
    with pytest.raises(RenderError, match="must end in .mp4 or .gif"):
        render_sequence(keypoints, poses, H36M, tmp_path / "a.avi")


def test_training_curves_png(tmp_path):
    lines = [
        json.dumps({"step": e, "train/loss_mm": 100 - e, "val/mpjpe_mm": 120 - 2 * e})
        for e in range(5)
    ]
    (tmp_path / "scalars.jsonl").write_text("\n".join(lines))
    png = plot_training_curves(tmp_path, tmp_path / "curves.png")
    assert Image.open(png).size[0] == 1000
    with pytest.raises(RenderError, match="none of the scalars"):
        plot_training_curves(tmp_path, tmp_path / "c.png", keys=("nothing",))
