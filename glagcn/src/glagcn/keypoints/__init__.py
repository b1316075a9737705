"""Users' 2D keypoints: one reader per detector format, tracking, gaps, H36M-17 mapping.

``read_detections(path)`` recognises the format (``format=`` overrides; see
:data:`FORMATS`), ``build_tracks`` / ``choose_track`` pick a person, ``track_sequence`` and
``prepare_h36m`` make the H36M-17 pixels that :mod:`glagcn.lift` lifts.
:func:`load_track` does all of it.
"""

from __future__ import annotations

from pathlib import Path

from glagcn.keypoints.core import (
    Detection,
    DetectionSet,
    KeypointInputError,
    KeypointSequence,
    ScoreRule,
    resolve_score_rule,
)
from glagcn.keypoints.layouts import LAYOUTS, JointLayout, get_layout, to_h36m
from glagcn.keypoints.registry import FORMATS, ReadOptions, format_table, read_detections
from glagcn.keypoints.sequence import PreparedTrack, prepare_h36m, to_h36m_sequence, track_sequence
from glagcn.keypoints.tracking import Track, build_tracks, choose_track, describe_tracks

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "Detection",
    "DetectionSet",
    "JointLayout",
    "KeypointInputError",
    "KeypointSequence",
    "PreparedTrack",
    "ReadOptions",
    "ScoreRule",
    "Track",
    "build_tracks",
    "choose_track",
    "describe_tracks",
    "format_table",
    "get_layout",
    "load_track",
    "prepare_h36m",
    "read_detections",
    "resolve_score_rule",
    "to_h36m",
    "to_h36m_sequence",
    "track_sequence",
]


def load_track(
    path: str | Path,
    format: str | None = None,  # noqa: A002
    options: ReadOptions | None = None,
    person: int | None = None,
    link_iou: float = 0.3,
    max_link_gap: int | None = None,
) -> tuple[KeypointSequence, list[Track], DetectionSet]:
    """Read a keypoint file and return the chosen person's sequence, all tracks, the file."""
    detections = read_detections(path, format, options)
    tracks = build_tracks(detections, link_iou, max_link_gap)
    track = choose_track(tracks, person, detections.source)
    return track_sequence(detections, track), tracks, detections
