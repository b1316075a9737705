"""One person's track -> H36M-17 pixels ready to lift: missing joints, gaps, segments.

* A joint is *missing* where it has no coordinates or its score fails the format's
  :class:`~glagcn.keypoints.core.ScoreRule`; missing joints are interpolated linearly over
  time in the detector's own layout (so a derived joint never inherits one source's gap), then
  mapped to H36M-17 (:mod:`glagcn.keypoints.layouts`).
* A frame where the person is *absent* (not detected at all) is interpolated when the gap
  lasts at most ``max_gap_frames`` frames; longer gaps split the track into segments that are
  lifted separately, and their frames are marked invalid (NaN) with a message.
* A needed joint missing in more than ``max_missing_fraction`` of the frames where the person
  was detected is an error that names the joint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glagcn.keypoints.core import (
    DetectionSet,
    KeypointInputError,
    KeypointSequence,
    ScoreRule,
    resolve_score_rule,
)
from glagcn.keypoints.layouts import get_layout, to_h36m
from glagcn.keypoints.tracking import Track


def track_sequence(detections: DetectionSet, track: Track) -> KeypointSequence:
    """The frames from the track's first to its last detection; absent frames are NaN."""
    first, last = min(track.frames), max(track.frames)
    joints = get_layout(detections.layout).num_joints
    count = last - first + 1
    keypoints = np.full((count, joints, 2), np.nan, dtype=np.float32)
    scores = np.full((count, joints), np.nan, dtype=np.float32)
    present = np.zeros(count, dtype=bool)
    for frame, detection in zip(track.frames, track.detections, strict=True):
        keypoints[frame - first] = detection.keypoints
        scores[frame - first] = detection.scores
        present[frame - first] = True
    return KeypointSequence(
        keypoints,
        scores,
        np.arange(first, last + 1),
        detections.layout,
        detections.source,
        detections.score_rule,
        detections.image_size,
        track.track_id,
        present,
    )


def _dense(sequence: KeypointSequence) -> KeypointSequence:
    """Insert absent rows where ``frame_indices`` jump, so rows are consecutive frames."""
    frames = sequence.frame_indices
    if len(frames) > 1 and np.any(np.diff(frames) <= 0):
        raise KeypointInputError(
            f"{sequence.source}: frame indices must increase, got {frames[:10].tolist()}..."
        )
    span = int(frames[-1] - frames[0] + 1)
    if span == len(frames):
        return sequence
    rows = frames - frames[0]
    keypoints = np.full((span,) + sequence.keypoints.shape[1:], np.nan, dtype=np.float32)
    scores = np.full((span,) + sequence.scores.shape[1:], np.nan, dtype=np.float32)
    present = np.zeros(span, dtype=bool)
    keypoints[rows], scores[rows], present[rows] = (
        sequence.keypoints,
        sequence.scores,
        sequence.present,
    )
    return KeypointSequence(
        keypoints,
        scores,
        np.arange(frames[0], frames[-1] + 1),
        sequence.layout,
        sequence.source,
        sequence.score_rule,
        sequence.image_size,
        sequence.person,
        present,
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row ranges where ``mask`` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass
class PreparedTrack:
    """H36M-17 pixels of one person, ready to lift."""

    keypoints: np.ndarray  # (T, 17, 2) float32 pixels; NaN in invalid frames
    filled: np.ndarray  # (T, 17) bool: interpolated entries
    valid: np.ndarray  # (T,) bool: frames that are lifted
    frame_indices: np.ndarray  # (T,) int64 video frames
    segments: list[tuple[int, int]]  # [start, stop) rows lifted together
    messages: list[str] = field(default_factory=list)


def prepare_h36m(
    sequence: KeypointSequence,
    score_rule: ScoreRule | None = None,
    max_missing_fraction: float = 0.5,
    max_gap_frames: int = 15,
) -> PreparedTrack:
    """Fill missing joints and short gaps, split at long gaps, map to H36M-17."""
    sequence = _dense(sequence)
    layout = get_layout(sequence.layout)
    rule = score_rule or sequence.score_rule
    source = sequence.source
    who = "the person" if sequence.person is None else f"person {sequence.person}"
    present = sequence.present.copy()
    if not present.any():
        raise KeypointInputError(f"{source}: the track is empty (no frame has keypoints)")
    keypoints = sequence.keypoints
    missing = ~np.isfinite(keypoints).all(axis=-1)
    scores = np.where(present[:, None], sequence.scores, np.nan)
    missing |= rule.missing(scores, source)
    missing[~present] = True
    used = list(layout.used_joints)
    fractions = missing[present][:, used].mean(axis=0)
    worst = int(np.argmax(fractions))
    if fractions[worst] > max_missing_fraction:
        name = layout.joint_names[used[worst]]
        raise KeypointInputError(
            f"{source}: {name} is missing ({rule.describe()} or no coordinates) in "
            f"{fractions[worst]:.0%} of the {int(present.sum())} frames where {who} was "
            f"detected, more than the allowed {max_missing_fraction:.0%}; the sequence cannot "
            "be lifted reliably (see score_rule, score_threshold, max_missing_fraction)"
        )

    frames = sequence.frame_indices
    messages: list[str] = []
    valid = np.ones(len(frames), dtype=bool)
    short_gaps = short_frames = 0
    for start, stop in _runs(~present):
        length = stop - start
        if length > max_gap_frames:
            valid[start:stop] = False
            messages.append(
                f"frames {frames[start]}-{frames[stop - 1]} ({length} frames): "
                f"{who} not detected, a gap longer than max_gap_frames="
                f"{max_gap_frames}: marked invalid (NaN)"
            )
        else:
            short_gaps, short_frames = short_gaps + 1, short_frames + length
    if short_gaps:
        messages.append(
            f"{short_gaps} short gap(s) without {who} ({short_frames} frames) interpolated"
        )

    filled_source = np.full_like(keypoints, np.nan)
    segments = []
    for start, stop in _runs(valid):
        rows = slice(start, stop)
        never = [j for j in used if missing[rows, j].all()]
        if never:
            valid[rows] = False
            names = ", ".join(layout.joint_names[j] for j in never)
            messages.append(
                f"frames {frames[start]}-{frames[stop - 1]}: {names} never "
                "detected there: marked invalid (NaN)"
            )
            continue
        segments.append((start, stop))
        time = frames[rows].astype(np.float64)
        for joint in used:
            ok = ~missing[rows, joint]
            for axis in range(2):
                filled_source[rows, joint, axis] = np.interp(
                    time, time[ok], keypoints[rows, joint, axis][ok]
                )
    if not segments:
        raise KeypointInputError(
            f"{source}: no stretch of frames can be lifted ({'; '.join(messages)})"
        )
    h36m, kept = to_h36m(layout, filled_source, (~missing).astype(np.float32))
    h36m = h36m.astype(np.float32)
    filled = (kept < 0.5) & valid[:, None]
    h36m[~valid] = np.nan
    return PreparedTrack(h36m, filled, valid, frames.copy(), segments, messages)


def to_h36m_sequence(
    sequence: KeypointSequence,
    score_threshold: float | None = None,
    max_missing_fraction: float = 0.5,
    max_gap_frames: int = 15,
    score_rule: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """H36M-17 pixel keypoints (T, 17, 2), gaps filled, and the (T, 17) mask of filled joints.

    ``score_rule`` / ``score_threshold`` override the sequence's own rule (see
    :func:`~glagcn.keypoints.core.resolve_score_rule`).
    """
    rule = resolve_score_rule(sequence.score_rule, score_rule, score_threshold)
    prepared = prepare_h36m(sequence, rule, max_missing_fraction, max_gap_frames)
    return prepared.keypoints, prepared.filled
