"""Reading videos frame by frame with OpenCV (never the whole clip in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trilab.errors import UserError


class VideoError(UserError, ValueError):
    """A video that cannot be opened or read; the message names it."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float  # 0 when the container does not say
    frame_count: int  # from the container; 0 when unknown (it can be off by a few frames)


def video_info(path: str | Path) -> VideoInfo:
    import cv2

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoError(
                f"cannot open video {path} (not a video, or a codec OpenCV cannot read)"
            )
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: OpenCV reports no frame size; is it a video?")
    return VideoInfo(path, width, height, fps if np.isfinite(fps) and fps > 0 else 0.0, count)


def iter_frames(path: str | Path, frame_indices=None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for every frame, or for the ascending ``frame_indices``."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(f"cannot open video {path}")
    wanted = None if frame_indices is None else iter(int(i) for i in frame_indices)
    target = None if wanted is None else next(wanted, None)
    try:
        index = -1
        while wanted is None or target is not None:
            ok, frame = capture.read()
            if not ok:
                if target is not None:
                    raise VideoError(
                        f"video {path} ends before frame {target} (it has {index + 1} frames)"
                    )
                return
            index += 1
            if wanted is None:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            elif index == target:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                target = next(wanted, None)
    finally:
        capture.release()
