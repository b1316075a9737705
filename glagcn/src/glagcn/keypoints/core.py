"""What every keypoint reader returns: people per frame, with the file's own score meaning.

A reader turns a detector's file into a :class:`DetectionSet` (all people of every frame, in
the file's joint layout, frames numbered from 0 = the video's first frame).  Tracking
(:mod:`glagcn.keypoints.tracking`) then picks one person, and
:func:`glagcn.keypoints.sequence.track_sequence` makes a :class:`KeypointSequence` of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glagcn.keypoints.errors import KeypointInputError
from glagcn.keypoints.layouts import LAYOUTS, get_layout

SCORE_RULE_KINDS = ("absolute", "relative", "none")
DEFAULT_THRESHOLDS = {"absolute": 0.3, "relative": 0.2, "none": 0.0}


MAX_IMAGE_SIDE_PX = 100_000  # no camera writes wider images; beyond it a size is garbage
# Frames a file's numbering may span per frame it actually holds: sparse tracks (every 10th
# frame) pass, a stray id (a millisecond timestamp, 1e15) does not allocate terabytes.
MAX_FRAME_SPAN_PER_FRAME = 100
FRAME_SPAN_SLACK = 10_000


def numeric_array(value, source: str, key: str, meaning: str = "pixel coordinates") -> np.ndarray:
    """``value`` as a real-valued array, refusing what would convert silently into garbage
    (booleans to 0/1, complex numbers, strings, objects: None became NaN)."""
    try:
        array = np.asarray(value)
    except ValueError:  # nested lists of unequal lengths
        raise KeypointInputError(
            f"{source}: {key} is not an array: its rows differ in length"
        ) from None
    if array.dtype.kind not in "iuf":
        raise KeypointInputError(
            f"{source}: {key} holds {array.dtype} values; expected real numbers ({meaning})"
        )
    return array


def checked_image_size(size, source: str) -> tuple[int, int]:
    """(width, height) as positive whole pixels within :data:`MAX_IMAGE_SIDE_PX`."""
    try:
        width, height = (float(v) for v in size)
    except (TypeError, ValueError):
        raise KeypointInputError(
            f"{source}: image size must be (width, height), got {size!r}"
        ) from None
    for name, value in (("width", width), ("height", height)):
        if not np.isfinite(value) or value <= 0 or value > MAX_IMAGE_SIDE_PX:
            raise KeypointInputError(
                f"{source}: image {name} {value:g} is not a size in "
                f"pixels (expected 1 .. {MAX_IMAGE_SIDE_PX})"
            )
    return int(round(width)), int(round(height))


@dataclass(frozen=True)
class ScoreRule:
    """When a joint's score makes it "missing" (to be interpolated over time).

    ``absolute``: score below ``threshold``.  ``relative``: score below ``threshold`` times the
    median score of the whole track (for scores without a fixed scale, e.g. detectron2's
    spatial softmax).  ``none``: scores are not used; only joints without coordinates are
    missing.
    """

    kind: str = "absolute"
    threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in SCORE_RULE_KINDS:
            raise KeypointInputError(
                f"unknown score_rule {self.kind!r}; use one of {', '.join(SCORE_RULE_KINDS)}"
            )

    def missing(self, scores: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Boolean mask, True where a joint's score makes it missing (NaN scores count as
        missing unless the rule is ``none``)."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.kind == "none":
            return np.zeros(scores.shape, dtype=bool)
        limit = self.threshold
        if self.kind == "relative":
            reference = self.reference(scores)
            if not reference > 0:
                raise KeypointInputError(
                    f"{source}: score_rule=relative needs positive scores, but the median "
                    f"score is {reference:.3g}; use score_rule=none or absolute"
                )
            limit = self.threshold * reference
        return ~(np.nan_to_num(scores, nan=-np.inf) >= limit)

    @staticmethod
    def reference(scores: np.ndarray) -> float:
        finite = scores[np.isfinite(scores)]
        return float(np.median(finite)) if finite.size else float("nan")

    def describe(self) -> str:
        if self.kind == "none":
            return "no score threshold"
        if self.kind == "relative":
            return f"score < {self.threshold:g} x the track's median score"
        return f"score < {self.threshold:g}"


def resolve_score_rule(
    default: ScoreRule, kind: str | None = None, threshold: float | None = None
) -> ScoreRule:
    """The format's rule, with the user's ``score_rule`` / ``score_threshold`` applied."""
    kind = kind or default.kind
    if threshold is None:
        threshold = default.threshold if kind == default.kind else DEFAULT_THRESHOLDS.get(kind, 0)
    rule = ScoreRule(kind, float(threshold))
    if kind == "none" and threshold not in (0, 0.0) and default.kind != "none":
        raise KeypointInputError("score_threshold has no effect with score_rule=none")
    return rule


@dataclass
class Detection:
    """One person in one frame, in the file's joint layout and pixel coordinates."""

    keypoints: np.ndarray  # (J, 2) float32; NaN where the file marks the joint as not found
    scores: np.ndarray  # (J,) float32; NaN where the file has no score
    box: np.ndarray | None = None  # (4,) x1, y1, x2, y2
    box_score: float | None = None  # the detector's confidence in the person (its own scale)
    track_id: int | None = None  # the file's own person id (AlphaPose tracking, ...)

    def bounding_box(self) -> np.ndarray | None:
        """The file's box, else the extent of the joints with coordinates."""
        if self.box is not None:
            return self.box
        valid = np.isfinite(self.keypoints).all(axis=1)
        if not valid.any():
            return None
        points = self.keypoints[valid]
        return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)

    def confidence(self) -> float:
        """The person score used to rank people: the file's person score, else the mean joint
        score (clipped at 0), else 1."""
        if self.box_score is not None and np.isfinite(self.box_score):
            return max(float(self.box_score), 0.0)
        finite = self.scores[np.isfinite(self.scores)]
        return max(float(finite.mean()), 0.0) if finite.size else 1.0


@dataclass
class DetectionSet:
    """Everything a keypoint file holds: people per frame (0-based video frame numbers)."""

    source: str
    format: str
    layout: str
    frames: dict[int, list[Detection]]  # frame -> people; frames the file lists as empty: []
    score_rule: ScoreRule
    score_meaning: str
    image_size: tuple[int, int] | None = None  # (width, height) from the file's metadata
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        get_layout(self.layout)

    def validate(self) -> None:
        """Refuse what would lift to meaningless poses or allocate without bound: frame
        numbers spread far beyond the frames held, coordinates no image can have, an
        impossible image size.  Each message names the value and where it is."""
        if self.image_size is not None:
            self.image_size = checked_image_size(self.image_size, self.source)
        frames = sorted(self.frames)
        span = frames[-1] - frames[0] + 1
        allowed = MAX_FRAME_SPAN_PER_FRAME * len(frames) + FRAME_SPAN_SLACK
        if span > allowed:
            median = frames[len(frames) // 2]
            culprit = max(frames, key=lambda frame: abs(frame - median))
            raise KeypointInputError(
                f"{self.source}: frame number {culprit} is {abs(culprit - median):,} frames "
                f"from the others ({len(frames)} frames around {median}): the numbering spans "
                f"{span:,} frames, more than {allowed:,} for a file of {len(frames)} frames; "
                "fix that frame's id (a timestamp is not a frame number) or set first_frame_id"
            )
        if self.image_size is not None:
            width, height = self.image_size
            low, high = (-width, -height), (2 * width, 2 * height)
        else:
            low, high = (-MAX_IMAGE_SIDE_PX,) * 2, (2 * MAX_IMAGE_SIDE_PX,) * 2
        for frame in frames:
            for person, detection in enumerate(self.frames[frame]):
                points = detection.keypoints
                with np.errstate(invalid="ignore"):
                    bad = np.isinf(points) | (points < low) | (points > high)
                if bad.any():
                    joint, axis = (int(i) for i in np.argwhere(bad)[0])
                    bounds = (
                        f"image size {self.image_size}"
                        if self.image_size
                        else "no image size known"
                    )
                    raise KeypointInputError(
                        f"{self.source}: frame {frame}, person {person}, joint {joint}: "
                        f"{'xy'[axis]} = {float(points[joint, axis]):g} px is outside any "
                        f"image ({bounds}); missing joints must be written as the format "
                        "says (score 0 / NaN)"
                    )

    @property
    def num_detections(self) -> int:
        return sum(len(people) for people in self.frames.values())

    def frame_span(self) -> tuple[int, int]:
        return min(self.frames), max(self.frames)


@dataclass
class KeypointSequence:
    """A 2D keypoint track of one person: pixels, per-joint scores, video frame indices.

    Frames where the person was not detected have NaN keypoints (and ``present`` False).
    """

    keypoints: np.ndarray  # (T, J, 2) float32 pixels, NaN where missing
    scores: np.ndarray  # (T, J) float32; NaN where unknown
    frame_indices: np.ndarray  # (T,) int64, ascending
    layout: str  # a name of glagcn.keypoints.layouts.LAYOUTS
    source: str = "<array>"
    score_rule: ScoreRule = field(default_factory=ScoreRule)
    image_size: tuple[int, int] | None = None
    person: int | None = None
    present: np.ndarray | None = None  # (T,) bool; None: frames with any joint coordinates

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise KeypointInputError(
                f"{self.source}: unknown layout {self.layout!r}, expected one of {tuple(LAYOUTS)}"
            )
        joints = LAYOUTS[self.layout].num_joints
        # the dtype before the shape: an object array is refused as such, not for its shape
        self.keypoints = numeric_array(self.keypoints, self.source, "keypoints").astype(
            np.float32, copy=False
        )
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (joints, 2):
            raise KeypointInputError(
                f"{self.source}: keypoints must have shape (T, {joints}, 2) "
                f"for the {self.layout} layout, got {self.keypoints.shape}"
            )
        if len(self.keypoints) == 0:
            raise KeypointInputError(f"{self.source}: the sequence has no frames")
        scores = np.asarray(self.scores)
        if scores.dtype != bool:  # a visibility mask is a score of 0 or 1; text is not
            scores = numeric_array(scores, self.source, "scores", "confidence scores")
        self.scores = scores.astype(np.float32, copy=False)
        if self.scores.shape != self.keypoints.shape[:2]:
            raise KeypointInputError(
                f"{self.source}: scores must have shape "
                f"{self.keypoints.shape[:2]}, got {self.scores.shape}"
            )
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64)
        if self.frame_indices.shape != (len(self.keypoints),):
            raise KeypointInputError(
                f"{self.source}: frame_indices must have shape "
                f"({len(self.keypoints)},), got {self.frame_indices.shape}"
            )
        if self.present is None:
            self.present = np.isfinite(self.keypoints).all(axis=-1).any(axis=-1)
        self.present = np.asarray(self.present, dtype=bool)
