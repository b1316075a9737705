"""Live lifting: frames in as they come (camera, stream URL or file), one JSON line per frame out.

Per frame: detector -> one person's COCO-17 keypoints -> H36M-17 -> One-Euro smoothing (optional)
-> the lifter on the last ``receptive_field`` frames -> a JSON line.  The lifter runs the same
windows as :class:`glagcn.model.SlidingLifter` (edge padding included), one at a time:

* a causal model (``model.causal=true``): frame t's window is t - RF + 1 .. t, so frame t's pose
  comes out as soon as frame t is processed (latency = processing time);
* a symmetric model: frame t's window is t - pad .. t + pad, so frame t's pose comes out when
  frame t + pad arrives (latency = pad frames more); at the end of the stream the last pad
  frames are lifted with the last frame repeated, as the offline path does.

A frame where nobody is detected gets a line with ``joints: null``; the lifter is fed the last
seen 2D pose for it, so the windows around it stay whole.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
import torch

from glagcn.camera import normalize_screen_coordinates, root_relative
from glagcn.data.batching import flip_poses
from glagcn.keypoints.layouts import get_layout, to_h36m
from glagcn.model import GLAGCN
from glagcn.skeleton import H36M_17


class OnlineLifter:
    """Feed one H36M-17 2D frame (normalised screen coordinates) at a time; get back the
    (position, root-relative 3D pose) pairs that became ready.  Positions count the frames
    pushed, from 0."""

    def __init__(
        self, model: GLAGCN, flip_test: bool = True, device="cpu", threads: int | None = 1
    ) -> None:
        self.model = model.eval()
        # One window per call is small work: on a CPU, torch's intra-op threads cost more than
        # they give (measured: 14 ms per 27-frame window on one thread, 190 ms on two while
        # BlazePose and other jobs use the cores).  None keeps torch's setting.
        self.threads = threads
        self.flip_test = flip_test
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        receptive_field = model.receptive_field
        pad = (receptive_field - 1) // 2
        self.causal = bool(getattr(model, "causal", False))
        self.before, self.after = (2 * pad, 0) if self.causal else (pad, pad)
        self.history: deque[np.ndarray] = deque(maxlen=receptive_field)
        self.pushed = 0
        self.emitted = 0

    @property
    def delay_frames(self) -> int:
        """Frames between a frame's arrival and its pose (0 for a causal model)."""
        return self.after

    def _window(self, position: int, last: int) -> np.ndarray:
        first_held = self.pushed - len(self.history)
        indices = np.clip(np.arange(position - self.before, position + self.after + 1), 0, last)
        return np.stack([self.history[i - first_held] for i in indices])

    def _lift(self, window: np.ndarray) -> np.ndarray:
        if self.threads is None or self.device.type != "cpu":
            return self._lift_window(window)
        before = torch.get_num_threads()
        if before == self.threads:
            return self._lift_window(window)
        torch.set_num_threads(self.threads)
        try:
            return self._lift_window(window)
        finally:
            torch.set_num_threads(before)

    @torch.inference_mode()
    def _lift_window(self, window: np.ndarray) -> np.ndarray:
        inputs = torch.as_tensor(window, dtype=self.dtype, device=self.device)[None]
        if self.flip_test:
            inputs = torch.cat([inputs, flip_poses(inputs, H36M_17)])
        poses = self.model(inputs)[:, 0]
        if self.flip_test:
            poses = 0.5 * (poses[:1] + flip_poses(poses[1:], H36M_17))
        return root_relative(poses[0].double().cpu().numpy(), H36M_17.root)

    def push(self, keypoints: np.ndarray) -> list[tuple[int, np.ndarray]]:
        self.history.append(np.asarray(keypoints))
        self.pushed += 1
        return self._ready(self.pushed - 1 - self.after)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """The poses still waiting for frames that will not come (end of the stream)."""
        return self._ready(self.pushed - 1)

    def _ready(self, until: int) -> list[tuple[int, np.ndarray]]:
        ready = []
        while self.emitted <= until:
            ready.append((self.emitted, self._lift(self._window(self.emitted, self.pushed - 1))))
            self.emitted += 1
        return ready


def pick_person(boxes: np.ndarray, previous: np.ndarray | None) -> int | None:
    """Which detection to follow: the box overlapping the previous one most, else the one
    with the highest score (a multi-person detector in live mode)."""
    if len(boxes) == 0:
        return None
    if previous is not None:
        x1 = np.maximum(boxes[:, 0], previous[0])
        y1 = np.maximum(boxes[:, 1], previous[1])
        x2 = np.minimum(boxes[:, 2], previous[2])
        y2 = np.minimum(boxes[:, 3], previous[3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area + (previous[2] - previous[0]) * (previous[3] - previous[1]) - inter
        iou = inter / np.maximum(union, 1e-9)
        if iou.max() > 0:
            return int(iou.argmax())
    return int(boxes[:, 4].argmax())


@dataclass
class LiveRecord:
    """Everything streamed so far, in frame order: what the npz/JSON/BVH are written from."""

    frame_indices: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    poses_3d: list[np.ndarray] = field(default_factory=list)  # NaN where nobody was seen
    keypoints_2d: list[np.ndarray] = field(default_factory=list)  # H36M-17 pixels lifted
    confidence: list[np.ndarray] = field(default_factory=list)
    # the detector's output (all people) of every processed frame, by frame index
    detections: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)  # frame read -> its line written

    def __len__(self) -> int:
        return len(self.frame_indices)


def confidence_of(rows: np.ndarray, detector: str) -> np.ndarray:
    """Per COCO joint, a 0..1 confidence: BlazePose's visibility (row 3), or the sigmoid of
    Keypoint R-CNN's heatmap logit (row 2)."""
    if detector == "blazepose":
        return rows[3]
    return 1.0 / (1.0 + np.exp(-rows[2]))


class LiveSession:
    """One person followed through a stream: :meth:`process` per frame, :meth:`finish` at the
    end.  ``detect(rgb) -> (boxes (N, 5), keypoints (N, 4, 17))``; ``smoother(x, t)`` a
    One-Euro filter on the H36M-17 pixels (None: off); ``sink`` gets the JSON lines."""

    def __init__(
        self,
        detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        detector_name: str,
        lifter: OnlineLifter,
        image_size: tuple[int, int],
        sink: TextIO,
        smoother=None,
    ) -> None:
        self.detect = detect
        self.detector_name = detector_name
        self.lifter = lifter
        self.width, self.height = image_size
        self.sink = sink
        self.smoother = smoother
        self.coco = get_layout("coco17")
        self.record = LiveRecord()
        self.previous_box: np.ndarray | None = None
        self.last_2d: np.ndarray | None = None
        self.pending: dict[int, dict] = {}  # lifter position -> the frame's line, pose to come
        self.positions = 0
        self.people_frames = 0

    def process(self, index: int, timestamp: float, frame: np.ndarray) -> None:
        started = time.perf_counter()
        boxes, keypoints = self.detect(frame)
        self.record.detections[int(index)] = (boxes, keypoints)
        chosen = pick_person(boxes, self.previous_box)
        line = {"frame_index": int(index), "timestamp": round(float(timestamp), 6)}
        if chosen is None:
            confidence = None
            if self.last_2d is None:  # nobody yet: nothing to lift
                self._emit(line, None, None, None, started)
                return
            pixels = self.last_2d
        else:
            self.people_frames += 1
            self.previous_box = boxes[chosen]
            rows = keypoints[chosen]
            pixels, confidence = to_h36m(
                self.coco, rows[:2].T.astype(np.float64), confidence_of(rows, self.detector_name)
            )
            if self.smoother is not None:
                pixels = self.smoother(pixels, float(timestamp))
            self.last_2d = pixels
        line["_started"] = started
        line["_confidence"] = confidence
        line["_pixels"] = pixels
        self.pending[self.positions] = line
        self.positions += 1
        normalized = normalize_screen_coordinates(pixels, self.width, self.height)
        for position, pose in self.lifter.push(normalized):
            self._emit_pending(position, pose)

    def _emit_pending(self, position: int, pose: np.ndarray) -> None:
        line = self.pending.pop(position)
        started = line.pop("_started")
        confidence = line.pop("_confidence")
        pixels = line.pop("_pixels")
        self._emit(line, pose if confidence is not None else None, confidence, pixels, started)

    def _emit(self, line, pose, confidence, pixels, started) -> None:
        line["joints"] = None if pose is None else np.round(pose, 5).tolist()
        line["confidence"] = (
            None if confidence is None else [round(float(c), 4) for c in confidence]
        )
        self.sink.write(json.dumps(line, allow_nan=False) + "\n")
        self.sink.flush()
        record = self.record
        record.frame_indices.append(line["frame_index"])
        record.timestamps.append(line["timestamp"])
        record.poses_3d.append(np.full((17, 3), np.nan) if pose is None else pose)
        record.keypoints_2d.append(np.full((17, 2), np.nan) if pixels is None else pixels)
        record.confidence.append(np.full(17, np.nan) if confidence is None else confidence)
        record.latencies_s.append(time.perf_counter() - started)

    def finish(self) -> None:
        """End of the stream (or Ctrl-C): lift the frames still waiting for look-ahead."""
        for position, pose in self.lifter.flush():
            self._emit_pending(position, pose)
