"""Which person to lift: tracks over frames, by the file's ids or by box overlap.

Where a file carries person ids (AlphaPose with tracking on, OpenPose's ``person_id``), they
are the tracks.  Otherwise people are linked frame to frame: a detection continues the track
whose last box (seen at most ``max_link_gap`` frames earlier; ``None``: any time) overlaps it
most, with an intersection-over-union of at least ``link_iou`` (one-to-one, by the Hungarian
algorithm).
The default person is the most visible over the clip: the sum over its frames of its score
times its box area.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from glagcn.keypoints.core import Detection, DetectionSet, KeypointInputError


@dataclass
class Track:
    """One person over the clip."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    from_file: bool = False  # the id is the file's own

    @property
    def visibility(self) -> float:
        total = 0.0
        for detection in self.detections:
            box = detection.bounding_box()
            area = 0.0 if box is None else max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
            total += detection.confidence() * float(area)
        return total

    def add(self, frame: int, detection: Detection) -> None:
        self.frames.append(frame)
        self.detections.append(detection)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (A, 4) and (B, 4) x1, y1, x2, y2 boxes."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=-1)
    area_a = np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0, None).prod(axis=-1)
    area_b = np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def build_tracks(
    detections: DetectionSet, link_iou: float = 0.3, max_link_gap: int | None = None
) -> list[Track]:
    """Tracks of everyone in the file, most visible first."""
    tracks: dict[int, Track] = {}
    untracked: list[tuple[int, Detection]] = []
    for frame in sorted(detections.frames):
        best: dict[int, Detection] = {}
        for detection in detections.frames[frame]:
            if detection.track_id is None:
                untracked.append((frame, detection))
                continue
            # A tracker may repeat an id within one frame; the more confident detection wins.
            other = best.get(detection.track_id)
            if other is None or detection.confidence() > other.confidence():
                best[detection.track_id] = detection
        for track_id, detection in best.items():
            tracks.setdefault(track_id, Track(track_id, from_file=True)).add(frame, detection)
    linked = _link_by_overlap(untracked, link_iou, max_link_gap)
    ordered = sorted(linked, key=lambda t: -t.visibility)
    first_free = max(tracks, default=-1) + 1
    for rank, track in enumerate(ordered):
        track.track_id = first_free + rank
        tracks[track.track_id] = track
    return sorted(tracks.values(), key=lambda t: (-t.visibility, t.track_id))


def _link_by_overlap(
    items: list[tuple[int, Detection]], link_iou: float, max_link_gap: int | None
) -> list[Track]:
    tracks: list[Track] = []
    last_box: list[np.ndarray | None] = []
    by_frame: dict[int, list[Detection]] = {}
    for frame, detection in items:
        by_frame.setdefault(frame, []).append(detection)
    for frame in sorted(by_frame):
        people = by_frame[frame]
        boxes = [d.bounding_box() for d in people]
        active = [
            i
            for i, t in enumerate(tracks)
            if last_box[i] is not None
            and (max_link_gap is None or frame - t.frames[-1] <= max_link_gap + 1)
        ]
        assigned: dict[int, int] = {}
        linkable = [j for j, b in enumerate(boxes) if b is not None]
        if active and linkable:
            iou = box_iou(
                np.stack([last_box[i] for i in active]), np.stack([boxes[j] for j in linkable])
            )
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= link_iou:
                    assigned[linkable[c]] = active[r]
        for j, detection in enumerate(people):
            index = assigned.get(j)
            if index is None:
                tracks.append(Track(-1))
                last_box.append(None)
                index = len(tracks) - 1
            tracks[index].add(frame, detection)
            if boxes[j] is not None:
                last_box[index] = boxes[j]
    return tracks


def choose_track(tracks: list[Track], person: int | None, source: str) -> Track:
    """``person`` by id, or the most visible track."""
    if not tracks:
        raise KeypointInputError(f"{source}: no person was detected in any frame")
    if person is None:
        return tracks[0]
    for track in tracks:
        if track.track_id == int(person):
            return track
    ids = ", ".join(str(t.track_id) for t in sorted(tracks, key=lambda t: t.track_id))
    raise KeypointInputError(
        f"{source}: there is no person {person}; the people found are "
        f"{ids} (list them with list_people=true)"
    )


def frame_runs(frames: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs (first, last) of sorted frame numbers."""
    runs: list[tuple[int, int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], frame)
        else:
            runs.append((frame, frame))
    return runs


def describe_tracks(tracks: list[Track], chosen: int | None = None, max_runs: int = 4) -> str:
    """A table of the people: id, frame spans, detections, visibility (the default marked)."""
    default = tracks[0].track_id if tracks else None
    lines = [f"{'person':>7}  {'frames':<32} {'detected':>8}  {'visibility':>10}"]
    for track in tracks:
        runs = frame_runs(track.frames)
        spans = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:max_runs])
        if len(runs) > max_runs:
            spans += f", ... ({len(runs)} spans)"
        mark = " *" if track.track_id == default else "  "
        if chosen is not None and track.track_id == chosen and chosen != default:
            mark = " >"
        lines.append(
            f"{track.track_id:>5}{mark}  {spans:<32} {len(track.frames):>8}  "
            f"{track.visibility:>10.4g}"
        )
    lines.append(
        "* = the default (most visible: sum of score x box area); pick another with person=ID"
    )
    return "\n".join(lines)
