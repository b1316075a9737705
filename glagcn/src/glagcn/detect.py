"""People and their COCO-17 keypoints in every frame of a video: torchvision's Keypoint R-CNN.

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

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glagcn.video_io import VideoInfo, iter_frames, video_info
from trilab.errors import UserError
from trilab.safe_load import load_torch_file

WEIGHTS_FILE = "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"


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
    (``benchmarks/detector_cpu.md``: 3.2 vs 4.0 s per 1280x720 frame); a GPU wants several."""
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
