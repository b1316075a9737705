"""Lift any 2D keypoint sequence to 3D with a trained checkpoint: the library entry point."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glagcn.camera import normalize_screen_coordinates, root_relative
from glagcn.evaluation import predict_sequence
from glagcn.keypoints import (
    KeypointInputError,
    KeypointSequence,
    PreparedTrack,
    ScoreRule,
    prepare_h36m,
)
from glagcn.keypoints.core import checked_image_size, numeric_array
from glagcn.model import GLAGCN, model_from_checkpoint
from glagcn.model.glagcn import default_max_windows
from glagcn.skeleton import H36M_17
from trilab.errors import UserError


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint that cannot lift H36M-17 keypoints."""


@dataclass
class LiftResult:
    """3D poses of every frame of a track; invalid frames (long gaps) are NaN."""

    poses_3d: np.ndarray  # (T, 17, 3) metres, camera frame, root-relative
    keypoints_2d: np.ndarray  # (T, 17, 2) the H36M-17 pixels that were lifted
    frame_indices: np.ndarray  # (T,) video frames
    valid: np.ndarray  # (T,) bool
    filled: np.ndarray  # (T, 17) bool: interpolated 2D joints
    messages: list[str] = field(default_factory=list)


def load_lifter(checkpoint: str | Path, device: str | torch.device = "cpu") -> GLAGCN:
    """The model of a checkpoint trained on the H36M-17 layout."""
    model, extra = model_from_checkpoint(checkpoint, torch.device(device))
    if extra["skeleton"] != H36M_17.name:
        raise CheckpointMismatchError(
            f"{checkpoint} lifts the {extra['skeleton']} skeleton; lifting user keypoints "
            "needs a model trained on the H36M-17 layout"
        )
    return model


def _image_size(image_size) -> tuple[int, int]:
    return checked_image_size(image_size, "image_width/image_height")


def lift_prepared(
    prepared: PreparedTrack,
    image_size: tuple[int, int],
    model: GLAGCN,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    max_windows: int | None = None,
) -> np.ndarray:
    """Lift each valid segment of a prepared track on its own (edge-padded); NaN elsewhere.
    ``max_windows``: windows per forward call (None: the device's default)."""
    width, height = _image_size(image_size)
    device = torch.device(device)
    poses = np.full(prepared.keypoints.shape[:2] + (3,), np.nan, dtype=np.float32)
    for start, stop in prepared.segments:
        normalized = normalize_screen_coordinates(prepared.keypoints[start:stop], width, height)
        # in the wild there is no ground-truth root: the poses are given root at the origin
        # beyond about one image width/height off either edge (y is scaled by the width)
        outside = np.abs(normalized) > 3.0 * max(1.0, height / width)
        if outside.any():
            frame, joint, axis = (int(i) for i in np.argwhere(outside)[0])
            value = float(prepared.keypoints[start + frame, joint, axis])
            raise KeypointInputError(
                f"frame {start + frame}, H36M joint {joint}: {'xy'[axis]} = {value:g} px is far "
                f"outside the {width}x{height} image: wrong image size, or coordinates that are "
                "not pixels"
            )
        lifted = predict_sequence(model, normalized, H36M_17, device, flip_test, max_windows)
        if not np.isfinite(lifted).all():
            raise KeypointInputError(
                f"frames {start}-{stop - 1}: the model's output is not finite for these "
                f"keypoints (largest |coordinate| {np.nanmax(np.abs(normalized)):.3g} image "
                "widths from the centre): check the coordinates and the image size"
            )
        poses[start:stop] = root_relative(lifted, H36M_17.root)
    return poses


def prepare_track(
    sequence: KeypointSequence,
    score_rule: ScoreRule | None = None,
    max_missing_fraction: float = 0.5,
    max_gap_frames: int = 15,
    smooth=None,
) -> PreparedTrack:
    """Missing joints, gaps, H36M-17, then ``smooth`` on each segment: the lifter's input."""
    prepared = prepare_h36m(sequence, score_rule, max_missing_fraction, max_gap_frames)
    if smooth is not None:
        for start, stop in prepared.segments:
            prepared.keypoints[start:stop] = smooth(prepared.keypoints[start:stop])
    return prepared


class _Stop(Exception):
    """A speculative lift reached its last safe chunk, or was cancelled."""


class ChunkCache:
    """The model behind :class:`~glagcn.model.SlidingLifter`, with the outputs of chunks already
    lifted (by :func:`speculate_prepared`, in another thread) kept by the exact bytes of their
    input: a chunk whose input is bit for bit the same is not computed again, any other is.  The
    poses are therefore those of the plain model whatever was guessed ahead."""

    def __init__(self, model: GLAGCN) -> None:
        self.model = model
        self._outputs: dict[bytes, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self._budget: int | None = None  # speculative: chunk calls left before stopping
        self.cancelled = threading.Event()

    def __getattr__(self, name):  # receptive_field, causal, num_joints, parameters(), ...
        return getattr(self.__dict__["model"], name)

    def eval(self) -> ChunkCache:
        self.model.eval()
        return self

    @staticmethod
    def _key(chunk: torch.Tensor) -> bytes:
        data = chunk.detach().contiguous().cpu().numpy()
        digest = hashlib.blake2b(data.tobytes(), digest_size=32)
        digest.update(repr((data.shape, data.dtype.str)).encode())
        return digest.digest()

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        if self._budget is not None:  # speculating
            if self._budget <= 0 or self.cancelled.is_set():
                raise _Stop
            self._budget -= 1
        key = self._key(chunk)
        with self._lock:
            done = (
                self._outputs.get(key) if self._budget is not None else self._outputs.pop(key, None)
            )
        if done is not None:
            self.hits += self._budget is None
            return done
        output = self.model(chunk)
        if self._budget is not None:
            with self._lock:
                self._outputs[key] = output
        else:
            self.misses += 1
        return output


def video_max_windows(device: str | torch.device, receptive_field: int) -> int:
    """Windows per forward call on the video path: on a CPU at most 32 (16 frames and their
    mirror images), so that all but the last few frames' chunks can be lifted while the
    detector still runs (:class:`glagcn.predict.LiftAhead`); as fast per window as larger
    calls (benchmarks/bench_wild)."""
    default = default_max_windows(torch.device(device), receptive_field)
    return default if torch.device(device).type == "cuda" else min(default, 32)


def speculate_prepared(
    prepared: PreparedTrack,
    image_size: tuple[int, int],
    cache: ChunkCache,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    max_windows: int | None = None,
) -> None:
    """Lift ahead, into ``cache``, the chunks of a track prepared from the frames detected so
    far that later frames cannot change unless the track's preparation does: in the segment
    running to the last frame, only the chunks whose windows need no frame beyond it (no end
    padding).  ``max_windows`` must be the final lift's, so that the chunks are cut alike."""
    width, height = _image_size(image_size)
    device = torch.device(device)
    receptive_field = cache.receptive_field
    pad = (receptive_field - 1) // 2
    after = 0 if getattr(cache.model, "causal", False) else pad
    max_windows = max_windows or default_max_windows(device, receptive_field)
    per_call = max(max_windows // (2 if flip_test else 1), 1)  # as SlidingLifter cuts them
    for start, stop in prepared.segments:
        # the last segment may grow, and its last frames are the end padding for now
        windows = stop - start - (after if stop == len(prepared.keypoints) else 0)
        cache._budget = max(windows, 0) // per_call
        try:
            if cache._budget:
                normalized = normalize_screen_coordinates(
                    prepared.keypoints[start:stop], width, height
                )
                predict_sequence(cache, normalized, H36M_17, device, flip_test, max_windows)
        except _Stop:
            if cache.cancelled.is_set():
                return
        finally:
            cache._budget = None


def lift_track(
    sequence: KeypointSequence,
    image_size: tuple[int, int],
    checkpoint: str | Path | GLAGCN,
    score_rule: ScoreRule | None = None,
    max_missing_fraction: float = 0.5,
    max_gap_frames: int = 15,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    smooth=None,
    max_windows: int | None = None,
) -> LiftResult:
    """Prepare (missing joints, gaps, H36M-17) and lift one person's track.  ``smooth``:
    a function applied to each lifted segment's H36M-17 pixels (T, 17, 2) before lifting
    (e.g. the One-Euro filter of :mod:`glagcn.smoothing`); the result reports the smoothed
    keypoints."""
    _image_size(image_size)
    prepared = prepare_track(sequence, score_rule, max_missing_fraction, max_gap_frames, smooth)
    # a model, or a ChunkCache in front of one (the overlapped video path)
    model = load_lifter(checkpoint, device) if isinstance(checkpoint, (str, Path)) else checkpoint
    poses = lift_prepared(prepared, image_size, model, flip_test, device, max_windows)
    return LiftResult(
        poses,
        prepared.keypoints,
        prepared.frame_indices,
        prepared.valid,
        prepared.filled,
        prepared.messages,
    )


def lift_sequence(
    sequence: KeypointSequence,
    image_size: tuple[int, int],
    checkpoint: str | Path,
    score_threshold: float | None = None,
    max_missing_fraction: float = 0.5,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    max_gap_frames: int = 15,
) -> np.ndarray:
    """3D poses (T, 17, 3) of a :class:`KeypointSequence` (NaN in frames of long gaps)."""
    rule = sequence.score_rule
    if score_threshold is not None:
        rule = ScoreRule("absolute" if rule.kind == "none" else rule.kind, score_threshold)
    return lift_track(
        sequence,
        image_size,
        checkpoint,
        rule,
        max_missing_fraction,
        max_gap_frames,
        flip_test,
        device,
    ).poses_3d


def lift(
    keypoints_2d: np.ndarray,
    image_size: tuple[int, int],
    checkpoint: str | Path,
    scores: np.ndarray | None = None,
    layout: str = "h36m17",
    score_threshold: float = 0.3,
    max_missing_fraction: float = 0.5,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    max_gap_frames: int = 15,
) -> np.ndarray:
    """Root-relative 3D poses (T, 17, 3) in metres, H36M-17 order, for every input frame.

    ``keypoints_2d`` is (T, J, 2) in pixels of an image of ``image_size`` = (width, height),
    in any layout of :data:`glagcn.keypoints.LAYOUTS` (H36M-17, COCO-17, Halpe-26, BODY_25,
    ...).  Joints that are NaN or score below ``score_threshold`` are interpolated over time;
    a needed joint missing in more than ``max_missing_fraction`` of the frames is an error.
    Frames with no joint at all are interpolated when the gap is at most ``max_gap_frames``
    long, else returned as NaN.  Sequences shorter than the receptive field are edge-padded.
    """
    keypoints_2d = numeric_array(keypoints_2d, "<array>", "keypoints_2d")
    if scores is None:
        scores = np.ones(keypoints_2d.shape[:2], dtype=np.float32)
    sequence = KeypointSequence(
        keypoints_2d,
        scores,
        np.arange(len(keypoints_2d)),
        layout,
        score_rule=ScoreRule("absolute", score_threshold),
    )
    return lift_track(
        sequence,
        image_size,
        checkpoint,
        None,
        max_missing_fraction,
        max_gap_frames,
        flip_test,
        device,
    ).poses_3d
