"""Reading videos frame by frame with OpenCV (never the whole clip in memory), and live
sources: a camera index (``video=0``), a stream URL (RTSP, HTTP MJPEG, ...) or a file read as
its frames come (:func:`open_source`)."""

from __future__ import annotations

import os
import threading
import time
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


def iter_frames(
    path: str | Path, frame_indices=None, prefetch: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for every frame, or for the ascending ``frame_indices``.

    ``prefetch`` > 0: a background thread decodes up to that many frames ahead (OpenCV lets go
    of the GIL while decoding), so decoding overlaps with the consumer's work on another core.
    """
    if prefetch > 0:
        yield from _prefetched(_decoded_frames(path, frame_indices), prefetch)
    else:
        yield from _decoded_frames(path, frame_indices)


def _prefetched(frames: Iterator, depth: int) -> Iterator:
    import queue

    ready: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            ready.put((done, None))
        except BaseException as error:  # handed to the consumer, raised there
            ready.put((done, error))
        finally:
            frames.close()

    worker = threading.Thread(target=produce, name="decode frames", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item[0] is done:
                if item[1] is not None:
                    raise item[1]
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except Exception:
                worker.join(timeout=0.1)


def _decoded_frames(path: str | Path, frame_indices=None) -> Iterator[tuple[int, np.ndarray]]:
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


def _quiet_cv2():
    """cv2 with its own and FFmpeg's log lines off: a camera or URL that cannot be opened is
    reported in one line of ours, not three warnings of theirs."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read at first use
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def source_kind(video) -> str:
    """``camera`` (an integer: a camera index), ``url`` (``scheme://...``) or ``file``."""
    text = str(video).strip()
    if isinstance(video, int) or text.isdigit():
        return "camera"
    return "url" if "://" in text else "file"


class FrameSource:
    """Frames of a camera, stream or file as they come: ``for index, timestamp, rgb in source``.

    A file is read frame by frame; its timestamps are media time (index / fps).  A camera or a
    stream is read by a background thread that keeps only the newest frame, so a slow consumer
    gets the latest frame instead of an ever older queue (the skipped frames are counted in
    ``dropped``); its timestamps are wall-clock seconds (``time.time()``) at capture.  A live
    source that stops delivering frames ends the iteration with ``stopped`` set: for a camera or
    a stream this is a failure (:meth:`check_stopped`), for a file its end.
    """

    def __init__(self, video, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0):
        cv2 = _quiet_cv2()
        self.kind = source_kind(video)
        self.name = f"camera {int(str(video).strip())}" if self.kind == "camera" else str(video)
        self.read_timeout_s = float(read_timeout_s)
        if self.kind == "file" and not Path(str(video)).is_file():
            raise VideoError(f"video not found: {video}")
        self.capture = self._open(cv2, video, open_timeout_s)
        if not self.capture.isOpened():
            self.capture.release()
            reason = {
                "camera": "no such camera, or another program is using it",
                "url": "no answer, or not a video stream OpenCV can read",
                "file": "not a video, or a codec OpenCV cannot read",
            }[self.kind]
            raise VideoError(f"cannot open {self.name} ({reason})")
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps < 1e4 else 0.0
        self.frames_read = 0
        self.dropped = 0
        self.stopped = False  # the source ended or failed (not our choice)
        self._closed = False

    def _open(self, cv2, video, open_timeout_s: float):
        if self.kind == "camera":
            return cv2.VideoCapture(int(str(video).strip()))
        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        if self.kind == "url":
            return cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, timeouts)
        return cv2.VideoCapture(str(video))

    @property
    def live(self) -> bool:
        return self.kind != "file"

    def _read(self):
        """(ok, RGB frame) from the capture."""
        import cv2

        ok, frame = self.capture.read()
        if not ok or frame is None:
            return False, None
        if frame.ndim == 2:
            return True, cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        return True, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self._live_frames() if self.live else self._file_frames()

    def _file_frames(self):
        fps = self.fps or 25.0
        while not self._closed:
            ok, frame = self._read()
            if not ok:
                self.stopped = True
                return
            index = self.frames_read
            self.frames_read += 1
            yield index, index / fps, frame

    def _live_frames(self):
        newest: list = []  # [(index, timestamp, frame)]: at most one, replaced as frames come
        ready = threading.Condition()
        finished = threading.Event()

        def grab() -> None:
            index = 0
            while not self._closed:
                ok, frame = self._read()
                if not ok:
                    break
                with ready:
                    if newest:
                        self.dropped += 1
                    newest[:] = [(index, time.time(), frame)]
                    ready.notify()
                index += 1
            finished.set()
            with ready:
                ready.notify()

        reader = threading.Thread(target=grab, name=f"read {self.name}", daemon=True)
        reader.start()
        try:
            while True:
                with ready:
                    ready.wait_for(lambda: newest or finished.is_set())
                    if not newest:
                        self.stopped = not self._closed
                        return
                    item = newest.pop()
                self.frames_read += 1
                yield item
        finally:
            self._closed = True
            reader.join(timeout=self.read_timeout_s + 1.0)

    def check_stopped(self, kept: str = "") -> None:
        """A camera or stream that stopped delivering frames is an error (exit 2), named with
        how far it got and ``kept`` (what was written so far); a file's end is not."""
        if self.live and self.stopped:
            raise VideoError(
                f"{self.name} stopped sending frames after {self.frames_read} frames"
                + (f"; {kept}" if kept else "")
            )

    def close(self) -> None:
        self._closed = True
        self.capture.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(video, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> FrameSource:
    """A camera index, stream URL or video file, opened: see :class:`FrameSource`."""
    return FrameSource(video, open_timeout_s, read_timeout_s)


def write_photo_clip(
    path: str | Path,
    photo: np.ndarray,
    size: tuple[int, int] = (1280, 720),
    frames: int = 30,
    fps: float = 30.0,
) -> Path:
    """A short MP4 that pans and zooms over an RGB photograph (a real person moving through
    the frame, for tests and benchmarks): the photo, scaled to 80-100 % of the frame height,
    slides from left of centre to right of centre over a grey background."""
    import cv2

    width, height = size
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise VideoError(f"cannot write video {path}")
    try:
        for i in range(frames):
            phase = i / max(frames - 1, 1)
            scale = 0.8 + 0.2 * np.sin(np.pi * phase)
            side_h = int(height * scale)
            side_w = min(int(side_h * photo.shape[1] / photo.shape[0]), width)
            image = cv2.resize(photo, (side_w, side_h), interpolation=cv2.INTER_AREA)
            frame = np.full((height, width, 3), 90, dtype=np.uint8)
            x = int((width - side_w) * (0.3 + 0.4 * phase))
            y = (height - side_h) // 2
            frame[y : y + side_h, x : x + side_w] = image
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)
