"""Live lifting: the online lifter equals the offline one, a camera streams JSON lines, and
cameras, streams and videos that fail are one line, exit 2, with what was done kept."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from omegaconf import OmegaConf

from glagcn.data.batching import flip_poses
from glagcn.keypoints import KeypointInputError
from glagcn.live import OnlineLifter, pick_person
from glagcn.model import SlidingLifter, build_model
from glagcn.predict import predict
from glagcn.skeleton import H36M_17
from glagcn.video_io import VideoError, iter_frames, source_kind, write_photo_clip
from trilab.checkpoint import save_checkpoint
from trilab.testing import exit_of_entry_point

PROJECT = Path(__file__).resolve().parents[1]
TINY = {
    "filter_widths": [3, 3],
    "channels": 8,
    "temporal_kernel": 3,
    "output_layer": "per_joint",
    "sequence_branch": False,
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live_ckpt")
    paths = {}
    for causal in (False, True):
        config = dict(TINY, causal=causal)
        paths[causal] = folder / f"causal_{causal}.pt"
        save_checkpoint(
            paths[causal],
            model=build_model(config, H36M_17),
            epoch=0,
            extra={"model_config": config, "skeleton": "h36m17"},
        )
    return paths


@pytest.fixture(scope="module")
def astronaut_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "astronaut.mp4"
    return write_photo_clip(path, skimage.data.astronaut(), (320, 240), frames=12, fps=10)


def config(**overrides):
    cfg = OmegaConf.load(PROJECT / "configs" / "predict.yaml")
    cfg.pop("hydra")
    return OmegaConf.merge(cfg, {"progress": False, "render": False, **overrides})


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("flip_test", [False, True])
def test_online_lifter_gives_the_offline_poses(causal, flip_test):
    torch.manual_seed(0)
    model = build_model(dict(TINY, causal=causal), H36M_17).double().eval()
    frames = np.random.default_rng(0).normal(0, 0.3, (14, 17, 2))
    # predict_sequence's computation (SlidingLifter, mirrored copy averaged in), in float64
    inputs = torch.from_numpy(frames)
    with torch.inference_mode():
        if flip_test:
            both = SlidingLifter(model)(torch.stack([inputs, flip_poses(inputs, H36M_17)]))
            offline = 0.5 * (both[0] + flip_poses(both[1], H36M_17))
        else:
            offline = SlidingLifter(model)(inputs)
    offline = (offline - offline[:, :1]).numpy()
    lifter = OnlineLifter(model, flip_test)
    online = {}
    for t, frame in enumerate(frames):
        ready = lifter.push(frame)
        # a causal model's pose of frame t is out at once; a symmetric one's pad frames later
        assert [p for p, _ in ready] == ([t] if causal else ([t - 4] if t >= 4 else []))
        online.update(ready)
    online.update(lifter.flush())
    assert sorted(online) == list(range(14))
    np.testing.assert_allclose(np.stack([online[t] for t in range(14)]), offline, atol=1e-12)


def test_pick_person_follows_the_previous_box():
    boxes = np.array([[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.5]], dtype=float)
    assert pick_person(boxes, None) == 0
    assert pick_person(boxes, np.array([48, 48, 58, 58, 1.0])) == 1
    assert pick_person(np.zeros((0, 5)), None) is None


def test_source_kinds():
    assert source_kind("0") == "camera" and source_kind(1) == "camera"
    assert source_kind("rtsp://cam.local/stream") == "url"
    assert source_kind("clip.mp4") == "file"


class FakeCamera:
    """cv2.VideoCapture stand-in for camera 0: the frames of a clip, at about 50 frames/s."""

    def __init__(self, clip, frames=None):
        self.clip = cv2.VideoCapture(str(clip))
        self.left = frames

    def isOpened(self):
        return True

    def get(self, prop):
        return self.clip.get(prop)

    def read(self):
        time.sleep(0.02)
        if self.left is not None:
            if self.left == 0:
                return False, None
            self.left -= 1
        ok, frame = self.clip.read()
        if not ok:  # loop the clip: a camera does not end
            self.clip.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.clip.read()
        return ok, frame

    def release(self):
        self.clip.release()


def fake_cv2_camera(monkeypatch, clip, frames=None):
    real = cv2.VideoCapture

    def capture(source, *args):
        if isinstance(source, int):
            return FakeCamera(clip, frames)
        return real(source, *args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)


def stop_after(monkeypatch, frames):
    """Ctrl-C once the detector has seen ``frames`` frames."""
    import glagcn.detect

    original = glagcn.detect.BlazePose.__call__
    seen = []

    def detect(self, frame):
        if len(seen) == frames:
            raise KeyboardInterrupt
        seen.append(1)
        return original(self, frame)

    monkeypatch.setattr(glagcn.detect.BlazePose, "__call__", detect)


def test_camera_streams_json_lines_until_ctrl_c(
    tmp_path, checkpoints, astronaut_clip, monkeypatch, capsys
):
    fake_cv2_camera(monkeypatch, astronaut_clip)
    stop_after(monkeypatch, 6)
    out = tmp_path / "live"
    with pytest.raises(KeyboardInterrupt):
        predict(config(video="0", checkpoint=str(checkpoints[True]), output=str(out), jsonl="-"))
    # stdout carries the JSON lines only (the notes go to stderr then)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6
    indices = [line["frame_index"] for line in lines]
    assert indices == sorted(set(indices))  # newest frames; some may be skipped, none twice
    for line in lines:
        assert np.asarray(line["joints"]).shape == (17, 3)
        assert np.asarray(line["confidence"]).shape == (17,)
        assert line["timestamp"] > 1e9  # a live source's wall-clock capture time
    saved = np.load(out / "poses_3d.npz")
    assert saved["poses_3d"].shape == (6, 17, 3) and saved["frame_indices"].tolist() == indices
    np.testing.assert_allclose(saved["poses_3d"][-1], lines[-1]["joints"], atol=1e-5)
    assert (out / "detections_camera0.npz").is_file() and not (out / "poses_3d.jsonl").exists()


def test_camera_that_stops_is_exit_2_and_keeps_its_frames(
    tmp_path, checkpoints, astronaut_clip, monkeypatch
):
    fake_cv2_camera(monkeypatch, astronaut_clip, frames=5)
    out = tmp_path / "live"
    status, stderr = exit_of_entry_point(
        lambda: predict(config(video="0", checkpoint=str(checkpoints[False]), output=str(out))),
        "predict.py",
    )
    assert status == 2 and "camera 0 stopped sending frames after" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    saved = np.load(out / "poses_3d.npz")
    assert 1 <= len(saved["poses_3d"]) <= 5 and np.isfinite(saved["poses_3d"]).all()


def test_camera_that_does_not_exist(tmp_path, checkpoints):
    status, stderr = exit_of_entry_point(
        lambda: predict(config(video="7", checkpoint=str(checkpoints[True]), output=str(tmp_path))),
        "predict.py",
    )
    assert status == 2 and "cannot open camera 7 (no such camera" in stderr
    assert len(stderr.strip().splitlines()) == 1


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_stream_url_that_does_not_answer(tmp_path, checkpoints):
    url = f"http://127.0.0.1:{free_port()}/video.mjpg"
    with pytest.raises(VideoError, match=f"cannot open {url} \\(no answer"):
        predict(config(video=url, checkpoint=str(checkpoints[True]), output=str(tmp_path)))


@pytest.fixture
def mjpeg_server():
    """An HTTP MJPEG stream (multipart/x-mixed-replace, as IP cameras send) of the astronaut
    that sends 6 frames and part of a 7th, then closes the connection."""
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    jpeg = cv2.imencode(".jpg", cv2.resize(image, (256, 256)))[1].tobytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            for _ in range(6):
                self.wfile.write(part + jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.1)
            self.wfile.write(part + jpeg[: len(jpeg) // 3])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg"
    server.shutdown()
    server.server_close()


def test_stream_that_stops_midway_keeps_what_was_done(tmp_path, checkpoints, mjpeg_server):
    out = tmp_path / "live"
    with pytest.raises(VideoError, match="cam.mjpg stopped sending frames after [1-7] frames"):
        predict(
            config(
                video=mjpeg_server,
                checkpoint=str(checkpoints[True]),
                output=str(out),
                export="bvh",
                stream_timeout_s=5,
            )
        )
    lines = (out / "poses_3d.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 7 and json.loads(lines[-1])["joints"] is not None
    assert len(np.load(out / "poses_3d.npz")["poses_3d"]) == len(lines)
    assert (out / "poses.bvh").is_file() and (out / "detections_cam.npz").is_file()


def test_live_video_without_a_person(tmp_path, checkpoints):
    clip = write_photo_clip(tmp_path / "coffee.mp4", skimage.data.coffee(), (320, 240), 4, 10)
    out = tmp_path / "live"
    with pytest.raises(KeypointInputError, match="nobody was detected in .*coffee.mp4 \\(4 frames"):
        predict(
            config(video=str(clip), live=True, checkpoint=str(checkpoints[True]), output=str(out))
        )
    lines = [json.loads(line) for line in (out / "poses_3d.jsonl").read_text().splitlines()]
    assert [line["joints"] for line in lines] == [None] * 4


def test_live_file_with_a_symmetric_model_gives_every_frame(tmp_path, checkpoints, astronaut_clip):
    out = tmp_path / "live"
    predict(
        config(
            video=str(astronaut_clip),
            live=True,
            checkpoint=str(checkpoints[False]),
            output=str(out),
        )
    )
    lines = [json.loads(line) for line in (out / "poses_3d.jsonl").read_text().splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(12))
    assert [line["timestamp"] for line in lines] == pytest.approx(np.arange(12) / 10)
    assert all(line["joints"] is not None for line in lines)


def test_prefetched_frames_are_the_same_frames(astronaut_clip):
    plain = list(iter_frames(astronaut_clip))
    ahead = list(iter_frames(astronaut_clip, prefetch=3))
    assert [i for i, _ in ahead] == list(range(12))
    assert all((a == b).all() for (_, a), (_, b) in zip(plain, ahead, strict=True))
    assert [i for i, _ in iter_frames(astronaut_clip, [2, 7], prefetch=2)] == [2, 7]
    with pytest.raises(VideoError, match="ends before frame 40 \\(it has 12 frames\\)"):
        list(iter_frames(astronaut_clip, [40], prefetch=2))
    frames = iter_frames(astronaut_clip, prefetch=1)
    next(frames)
    frames.close()  # stops the decoding thread


@pytest.mark.parametrize("live", [False, True])
def test_export_bvh_gives_back_every_lifted_bone_and_the_root(
    tmp_path, checkpoints, astronaut_clip, live
):
    from glagcn.bvh import read_bvh

    out = tmp_path / "lift"
    predict(
        config(
            video=str(astronaut_clip),
            live=live,
            checkpoint=str(checkpoints[True]),
            output=str(out),
            export="bvh",
        )
    )
    poses = np.load(out / "poses_3d.npz")["poses_3d"].astype(np.float64)
    motion = read_bvh(out / "poses.bvh")
    positions = motion.positions()[:, [motion.joint_names.index(n) for n in H36M_17.joint_names]]
    assert len(positions) == len(poses)
    expected = poses * np.array([1.0, -1.0, -1.0])  # the file's Y-up frame: (x, -y, -z)
    valid = np.isfinite(expected).all(axis=(1, 2))
    assert valid.sum() >= len(poses) - 1
    got, want = positions[valid], expected[valid]
    np.testing.assert_allclose(got[:, 0], want[:, 0], atol=1e-6)  # the root, every frame
    for child, parent in H36M_17.bones:
        a, b = got[:, child] - got[:, parent], want[:, child] - want[:, parent]
        cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        assert angle.max() < 0.5, (H36M_17.joint_names[child], angle.max())
        length = np.linalg.norm(a, axis=-1)
        np.testing.assert_allclose(length, np.median(np.linalg.norm(b, axis=-1)), rtol=1e-5)
