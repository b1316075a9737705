"""``predict.py``: a detector's keypoints (or a video) in, 3D poses (npz + JSON) and renders out.

Steps: (detect people in ``video`` when no ``input`` is given) -> read the keypoint file in its
own format -> tracks -> one person -> missing joints, gaps, H36M-17 -> lift -> write -> render.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from glagcn.keypoints import (
    DetectionSet,
    KeypointInputError,
    ReadOptions,
    build_tracks,
    choose_track,
    describe_tracks,
    read_detections,
    resolve_score_rule,
    track_sequence,
)
from glagcn.keypoints.videopose3d import write_data_2d_custom, write_detectron_npz
from glagcn.lift import LiftResult, lift_track
from glagcn.render import render_frames_png, render_sequence
from glagcn.skeleton import H36M_17
from glagcn.video_io import VideoInfo, source_kind, video_info
from trilab.atomic import atomic_write, atomic_write_text
from trilab.errors import UserError


def _optional_number(value, name: str, low: float = -np.inf, high: float = np.inf) -> float | None:
    """``value`` as a finite float in [low, high]; None stays None.  Unchecked, a NaN frame
    rate became a NaN literal in poses_3d.json and a word where a number belongs a traceback."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):  # float(True) would pass as 1
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if not (np.isfinite(number) and low <= number <= high):
        bounds = f" in [{low:g}, {high:g}]" if np.isfinite([low, high]).all() else ""
        raise UserError(f"{name} must be a finite number{bounds}, got {value!r}")
    return number


def _optional_int(value, name: str, low: float = -np.inf) -> int | None:
    bound = f" >= {low:g}" if np.isfinite(low) else ""
    refusal = UserError(f"{name} must be an integer{bound}, got {value!r}")
    try:
        number = _optional_number(value, name, low)
    except UserError:
        raise refusal from None
    if number is not None and not number.is_integer():
        raise refusal
    return None if number is None else int(number)


def _options(cfg: DictConfig) -> dict:
    """The numeric options, checked before any file is read."""
    return {
        "first_frame_id": _optional_int(cfg.get("first_frame_id"), "first_frame_id"),
        "person": _optional_int(cfg.get("person"), "person"),
        "link_iou": _optional_number(cfg.link_iou, "link_iou", 0, 1),
        "link_max_gap": _optional_int(cfg.get("link_max_gap"), "link_max_gap", 0),
        "score_threshold": _optional_number(cfg.get("score_threshold"), "score_threshold"),
        "max_missing_fraction": _optional_number(
            cfg.max_missing_fraction, "max_missing_fraction", 0, 1
        ),
        "max_gap_frames": _optional_int(cfg.max_gap_frames, "max_gap_frames", 0),
        "fps": _optional_number(cfg.get("fps"), "fps", 1e-3, 1e4),
    }


def resolve_image_size(
    detections: DetectionSet, video: VideoInfo | None, width, height
) -> tuple[tuple[int, int], str]:
    """(width, height) and where it came from: the file's metadata, else the video, else the
    user's ``image_width``/``image_height``."""
    given = None
    if width is not None or height is not None:
        if width is None or height is None:
            raise UserError("give both image_width and image_height (or neither)")
        given = (_optional_int(width, "image_width"), _optional_int(height, "image_height"))
    if detections.image_size is not None:
        size, origin = detections.image_size, "the file's metadata"
    elif video is not None:
        size, origin = (video.width, video.height), f"the video {video.path.name}"
    elif given is not None:
        size, origin = given, "image_width/image_height"
    else:
        raise KeypointInputError(
            f"{detections.source}: the image size is unknown (this {detections.format} file "
            "does not record it); give video=VIDEO (its size is read) or image_width=W "
            "image_height=H"
        )
    if given is not None and tuple(given) != tuple(size):
        print(
            f"note: image_width/image_height {given[0]}x{given[1]} ignored: {origin} says "
            f"{size[0]}x{size[1]}"
        )
    if size[0] <= 0 or size[1] <= 0:
        raise KeypointInputError(f"image size must be positive, got {size}")
    return (int(size[0]), int(size[1])), origin


def _detector_name(cfg: DictConfig) -> str:
    from glagcn.detect import default_detector

    return default_detector(cfg.get("detector"), cfg.detector_device)


def _blazepose(cfg: DictConfig, video: bool = True):
    from glagcn.detect import BlazePose

    confidence = _optional_number(cfg.blazepose_min_confidence, "blazepose_min_confidence", 0, 1)
    return BlazePose(
        _optional_int(cfg.blazepose_complexity, "blazepose_complexity", 0),
        confidence,
        confidence,
        video=video,
    )


def _keypoint_rcnn(cfg: DictConfig):
    from glagcn.detect import build_detector

    return build_detector(
        cfg.detector_weights,
        cfg.detector_score_threshold,
        cfg.detector_max_people,
        cfg.detector_min_size,
        device=cfg.detector_device,
        proposals=cfg.detector_proposals,
    )


def _detector_description(cfg: DictConfig, name: str) -> str:
    if name == "blazepose":
        return f"BlazePose, min_detection_confidence {cfg.blazepose_min_confidence}"
    return f"Keypoint R-CNN, person score >= {cfg.detector_score_threshold}"


class LiftAhead:
    """Lifting overlapped with detection (BlazePose's pass over a video file): while the
    detector runs on the main thread, a worker thread takes the detections so far through the
    same steps as :func:`predict` (detectron2 npz, tracks, person, missing joints, smoothing)
    and lifts the chunks of windows that later frames cannot change into a
    :class:`~glagcn.lift.ChunkCache`.  The final lift goes through that cache, which reuses a
    chunk only when its input is bit for bit the final one: the poses are those of the
    sequential path, only sooner (torch and MediaPipe release the GIL in their kernels)."""

    def __init__(self, cfg: DictConfig, given: dict, video: VideoInfo, model, smooth) -> None:
        import tempfile
        import threading

        import torch

        from glagcn.lift import ChunkCache, video_max_windows

        self.cfg, self.given, self.video, self.smooth = cfg, given, video, smooth
        self.cache = ChunkCache(model)
        self.flip_test = bool(cfg.flip_test)
        self.max_windows = video_max_windows(cfg.device, model.receptive_field)
        self.per_call = max(self.max_windows // (1 + self.flip_test), 1)
        after = 0 if getattr(model, "causal", False) else (model.receptive_field - 1) // 2
        self.next_run = self.per_call + after + 1  # the first chunk is known then
        self.boxes: list[np.ndarray] = []
        self.keypoints: list[np.ndarray] = []
        self.folder = tempfile.TemporaryDirectory(prefix="glagcn_lift_ahead_")
        self.wake = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.threads = torch.get_num_threads()
        self.thread = threading.Thread(target=self._run, name="glagcn-lift-ahead", daemon=True)
        self.thread.start()

    def add(self, boxes: np.ndarray, keypoints: np.ndarray) -> None:
        """One more frame's detections (the detector's thread)."""
        with self.wake:
            self.boxes.append(boxes)
            self.keypoints.append(keypoints)
            if len(self.boxes) >= self.next_run:
                self.wake.notify()

    def _run(self) -> None:
        import torch

        # One torch thread beside the detector (two fight over the cores: benchmarks/
        # bench_wild); the kernels give the same bits on one thread as on several (tested).
        torch.set_num_threads(1)
        while True:
            with self.wake:
                while not self.done and len(self.boxes) < self.next_run:
                    self.wake.wait()
                if self.done:
                    return
                boxes, keypoints = list(self.boxes), list(self.keypoints)
            try:
                self._speculate(boxes, keypoints)
            except UserError:
                pass  # e.g. nobody seen yet: try again with more frames
            except BaseException as error:  # the final lift does the work; the error is kept
                self.error = error
                return
            known = len(boxes)
            self.next_run = known + max(self.per_call, known // 8)

    def _speculate(self, boxes: list, keypoints: list) -> None:
        from glagcn.lift import prepare_track, speculate_prepared

        cfg, given, video = self.cfg, self.given, self.video
        path = write_detectron_npz(
            Path(self.folder.name) / "ahead.npz", boxes, keypoints, video.width, video.height
        )
        options = ReadOptions(cfg.get("video_name"), given["first_frame_id"], cfg.get("layout"))
        detections = read_detections(path, "detectron2", options)
        tracks = build_tracks(detections, given["link_iou"], given["link_max_gap"])
        track = choose_track(tracks, given["person"], detections.source)
        rule = resolve_score_rule(
            detections.score_rule, cfg.get("score_rule"), given["score_threshold"]
        )
        prepared = prepare_track(
            track_sequence(detections, track),
            rule,
            given["max_missing_fraction"],
            given["max_gap_frames"],
            self.smooth,
        )
        speculate_prepared(
            prepared,
            (video.width, video.height),
            self.cache,
            self.flip_test,
            self.cfg.device,
            self.max_windows,
        )

    def close(self) -> None:
        """Stop the worker (end of the video, an error or Ctrl-C) and wait for it."""
        with self.wake:
            self.done = True
            self.wake.notify()
        self.cache.cancelled.set()
        self.thread.join()
        self.cache.cancelled.clear()
        import torch

        torch.set_num_threads(self.threads)
        self.folder.cleanup()


def _lift_ahead(cfg: DictConfig, given: dict, video: VideoInfo) -> LiftAhead | None:
    """A :class:`LiftAhead` for the checkpoint, or None where the checkpoint or the smoothing
    options are refused (the error then comes where it always did, after detection)."""
    from glagcn.lift import load_lifter

    if cfg.get("list_people"):
        return None
    try:
        smooth = _smoother(cfg, _fps(given, video))
        model = load_lifter(cfg.checkpoint, cfg.device)
    except Exception:
        return None
    return LiftAhead(cfg, given, video, model, smooth)


def _detect(
    cfg: DictConfig, video: VideoInfo, out: Path, name: str, ahead: LiftAhead | None = None
) -> Path:
    from glagcn.detect import detect_video, detect_video_one_person, detector_batch_size

    if name == "blazepose":
        with _blazepose(cfg) as detector:
            found = detect_video_one_person(
                video.path, detector, cfg.progress, ahead.add if ahead else None
            )
    else:
        detector = _keypoint_rcnn(cfg)
        batch_size = cfg.detector_batch_size or detector_batch_size(cfg.detector_device)
        found = detect_video(video.path, detector, batch_size, cfg.detector_device, cfg.progress)
    path = write_detectron_npz(
        out / f"detections_{video.path.stem}.npz",
        found.boxes,
        found.keypoints,
        video.width,
        video.height,
    )
    people = sum(len(b) for b in found.boxes)
    print(
        f"{name}: detected {people} people in {found.frames} frames "
        f"({found.seconds / max(found.frames, 1):.3f} s/frame) -> {path}"
    )
    return path


def smoothing_options(cfg: DictConfig) -> dict:
    """The One-Euro filter's parameters from the configuration, checked."""
    return {
        "min_cutoff": _optional_number(cfg.smooth_min_cutoff, "smooth_min_cutoff", 1e-6),
        "beta": _optional_number(cfg.smooth_beta, "smooth_beta", 0),
        "d_cutoff": _optional_number(cfg.smooth_d_cutoff, "smooth_d_cutoff", 1e-6),
    }


def _fps(given: dict, video: VideoInfo | None) -> float:
    return given["fps"] or (video.fps if video and video.fps else 25.0)


def _smoother(cfg: DictConfig, fps: float):
    """The One-Euro filter of a whole segment, or None (``smooth`` null or false: off for
    files and keypoint inputs)."""
    if not cfg.get("smooth"):
        return None
    from glagcn.smoothing import smooth_sequence

    options = smoothing_options(cfg)

    def smooth(keypoints):
        return smooth_sequence(keypoints, fps, **options)

    return smooth


def _write_poses(
    out: Path,
    result: LiftResult,
    source: tuple[str, str],
    person: int,
    image_size: tuple[int, int],
    fps: float,
) -> dict:
    npz = dict(
        poses_3d=result.poses_3d,
        frame_indices=result.frame_indices,
        valid=result.valid,
        keypoints_2d=result.keypoints_2d,
        filled_2d=result.filled,
        layout="h36m17",
        joint_names=np.array(H36M_17.joint_names),
        person=person,
        image_size=np.array(image_size),
        fps=fps,
    )
    # each output replaces the last run's whole or not at all (a kill, a full disk)
    atomic_write(out / "poses_3d.npz", lambda handle: np.savez(handle, **npz))
    frames = [
        {"frame_index": int(f), "valid": bool(v), "joints": p.round(5).tolist() if v else None}
        for f, v, p in zip(result.frame_indices, result.valid, result.poses_3d, strict=True)
    ]
    atomic_write_text(
        out / "poses_3d.json",
        json.dumps(
            {
                "layout": "h36m17",
                "joint_names": list(H36M_17.joint_names),
                "units": "metres",
                "coordinates": "camera frame (x right, y down, z forward), root-relative",
                "source": source[0],
                "format": source[1],
                "person": person,
                "image_size": list(image_size),
                "fps": fps,
                "frames": frames,
            },
            allow_nan=False,  # strict JSON: other languages' parsers reject NaN literals
        ),
    )
    return {"poses_3d": str(out / "poses_3d.npz"), "poses_json": str(out / "poses_3d.json")}


def predict(cfg: DictConfig) -> dict:
    given = _options(cfg)
    if cfg.export not in (None, "bvh"):
        raise UserError(f"export must be null or bvh, got {cfg.export!r}")
    if cfg.export == "bvh":
        from glagcn.bvh import GIRDLES

        if cfg.bvh_girdle not in GIRDLES:
            raise UserError(f"bvh_girdle must be one of {list(GIRDLES)}, got {cfg.bvh_girdle!r}")
    out = Path(str(cfg.output))
    out.mkdir(parents=True, exist_ok=True)
    live = cfg.get("live")
    if cfg.get("video") is not None and cfg.get("input") is None:
        if live is None:
            live = source_kind(cfg.video) != "file"
        if live:
            return predict_live(cfg, out, given["fps"])
    elif live:
        raise UserError("live=true needs video=CAMERA_INDEX|URL|FILE and no input=")
    video = video_info(cfg.video) if cfg.get("video") is not None else None
    written: dict = {}
    detector = ahead = None
    if cfg.get("input") is None:
        if video is None:
            raise UserError(
                "give input=KEYPOINTS (a detector's output: file or OpenPose "
                "folder), or video=VIDEO to detect people first (BlazePose on a CPU)"
            )
        detector = _detector_name(cfg)
        if detector == "blazepose":  # Keypoint R-CNN is ~100 times slower than the lift
            ahead = _lift_ahead(cfg, given, video)
        try:
            input_path, input_format = _detect(cfg, video, out, detector, ahead), "detectron2"
        finally:
            if ahead is not None:
                ahead.close()
        written["detections"] = str(input_path)
    else:
        input_path, input_format = Path(str(cfg.input)), cfg.get("format")
    options = ReadOptions(
        cfg.get("video_name"),
        given["first_frame_id"],
        cfg.get("layout"),
    )
    detections = read_detections(input_path, input_format, options)
    tracks = build_tracks(detections, given["link_iou"], given["link_max_gap"])
    first, last = detections.frame_span()
    print(
        f"{detections.source}: {detections.format}, {detections.layout}, frames "
        f"{first}-{last}, {len(tracks)} people"
    )
    for note in detections.notes:
        print(f"note: {note}")
    if cfg.get("list_people"):
        print(describe_tracks(tracks))
        return {"people": [t.track_id for t in tracks]}
    if not tracks and cfg.get("input") is None:
        raise KeypointInputError(
            f"nobody was detected in {video.path} ({_detector_description(cfg, detector)}); "
            "check that the video shows a person, or lower "
            + (
                "blazepose_min_confidence"
                if detector == "blazepose"
                else "detector_score_threshold"
            )
        )
    track = choose_track(tracks, given["person"], detections.source)
    sequence = track_sequence(detections, track)
    image_size, size_origin = resolve_image_size(
        detections, video, cfg.get("image_width"), cfg.get("image_height")
    )
    if video is not None and video.frame_count and sequence.frame_indices[-1] >= video.frame_count:
        raise KeypointInputError(
            f"{detections.source}: frame {sequence.frame_indices[-1]} is beyond the end of "
            f"{video.path} ({video.frame_count} frames); if the file counts frames from 1, "
            "give first_frame_id=1"
        )
    rule = resolve_score_rule(
        detections.score_rule, cfg.get("score_rule"), given["score_threshold"]
    )
    print(
        f"person {track.track_id}: frames {sequence.frame_indices[0]}-"
        f"{sequence.frame_indices[-1]}, detected in {int(sequence.present.sum())}; image "
        f"{image_size[0]}x{image_size[1]} from {size_origin}; scores: "
        f"{detections.score_meaning}; missing joint: {rule.describe()}"
    )
    if cfg.get("input") is None:
        custom = _write_track_2d(out, video, sequence, last + 1)
        written["keypoints_2d"] = str(custom)
    fps = _fps(given, video)
    smooth = _smoother(cfg, fps)
    if smooth is not None:
        print(
            f"One-Euro smoothing of the 2D keypoints ({smoothing_options(cfg)}, {fps:g} frames/s)"
        )
    max_windows = None
    if ahead is not None:  # the chunks LiftAhead cut, bit for bit
        max_windows = ahead.max_windows
    result = lift_track(
        sequence,
        image_size,
        cfg.checkpoint if ahead is None else ahead.cache,
        rule,
        given["max_missing_fraction"],
        given["max_gap_frames"],
        bool(cfg.flip_test),
        cfg.device,
        smooth=smooth,
        max_windows=max_windows,
    )
    for message in result.messages:
        print(f"note: {message}")
    if ahead is not None:
        chunks = ahead.cache.hits + ahead.cache.misses
        print(f"lifted {ahead.cache.hits} of {chunks} chunks of windows during detection")
    source = (detections.source, detections.format)
    written.update(_write_poses(out, result, source, track.track_id, image_size, fps))
    if cfg.export == "bvh":
        written["bvh"] = _export_bvh(out, result.poses_3d, fps, cfg.bvh_girdle)
    if cfg.render:
        written.update(_render(out, result, image_size, fps, video, cfg))
    print(f"lifted {int(result.valid.sum())} of {len(result.valid)} frames -> {out}")
    return written


def _export_bvh(out: Path, poses_3d: np.ndarray, fps: float, girdle: str = "exact") -> str:
    """``poses.bvh``: one BVH frame per output frame (glagcn.bvh holds the last lifted pose
    through frames that were not lifted).  ``girdle="exact"`` by default: a plain 17-joint file
    can give the pelvis and thorax only one rotation for their three bones each, which misses
    lifted torso bones by up to tens of degrees; the helper joints give every bone back."""
    from glagcn.bvh import write_bvh

    if not np.isfinite(poses_3d).all(axis=(1, 2)).any():
        raise KeypointInputError("export=bvh: no frame was lifted, there is nothing to write")
    path = out / "poses.bvh"
    write_bvh(path, poses_3d, fps, joint_names=list(H36M_17.joint_names), girdle=girdle)
    return str(path)


def _render(
    out: Path,
    result: LiftResult,
    image_size: tuple[int, int],
    fps: float,
    video: VideoInfo | None,
    cfg: DictConfig,
) -> dict:
    """The video (or a blank panel) with the 2D skeleton beside the 3D one, and a PNG."""
    movie = out / f"lift.{cfg.render_format}"
    background = video.path if video else None
    render_sequence(
        result.keypoints_2d,
        result.poses_3d,
        H36M_17,
        movie,
        fps=fps,
        image_size=image_size,
        frame_indices=result.frame_indices,
        video_path=background,
        progress=bool(cfg.progress),
    )
    render_frames_png(
        result.keypoints_2d,
        result.poses_3d,
        H36M_17,
        out / "lift_frames.png",
        image_size=image_size,
        video_path=background,
        frame_indices=result.frame_indices,
    )
    return {"video": str(movie), "frames_png": str(out / "lift_frames.png")}


def _write_track_2d(out: Path, video: VideoInfo, sequence, frames: int) -> Path:
    """The chosen person over all ``frames`` frames of the video in VideoPose3D's
    data_2d_custom layout."""
    keypoints = np.full((frames, 17, 2), np.nan, dtype=np.float32)
    scores = np.full((frames, 17), np.nan, dtype=np.float32)
    present = sequence.frame_indices[sequence.present]
    keypoints[present] = sequence.keypoints[sequence.present]
    scores[present] = sequence.scores[sequence.present]
    path = out / f"data_2d_custom_{video.path.stem}.npz"
    return write_data_2d_custom(path, video.path.stem, keypoints, scores, video.width, video.height)


def _stream_name(source) -> str:
    """A file-name-safe name for a live source: camera0, the URL's last part, or the stem."""
    if source.kind == "camera":
        return source.name.replace(" ", "")
    if source.kind == "file":
        return Path(source.name).stem
    tail = source.name.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(tail).stem)
    return safe or "stream"


def _live_detector(cfg: DictConfig, name: str):
    """(detect(rgb) -> boxes (N, 5), keypoints (N, 4, 17); its close function)."""
    if name == "blazepose":
        detector = _blazepose(cfg, video=True)
        return detector, detector.close
    import torch

    from glagcn.detect import _to_arrays

    model = _keypoint_rcnn(cfg)
    device = torch.device(cfg.detector_device)

    @torch.inference_mode()
    def detect(frame: np.ndarray):
        image = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0).to(device)
        return _to_arrays(model([image])[0])

    return detect, lambda: None


def predict_live(cfg: DictConfig, out: Path, fps_given: float | None) -> dict:
    """Frames of ``cfg.video`` (camera index, stream URL or file) lifted as they come, one JSON
    line per frame (``jsonl``: a file, default ``<output>/poses_3d.jsonl``, or ``-`` for
    stdout); at the end of the stream or on Ctrl-C the npz/JSON (and BVH) of everything done so
    far are written.  A camera or stream that stops sending frames, or a source where nobody
    was seen, is an error after those files are written (exit 2); Ctrl-C exits 130."""
    import sys

    from glagcn.lift import load_lifter
    from glagcn.live import LiveSession, OnlineLifter
    from glagcn.video_io import open_source

    to_stdout = str(cfg.jsonl) == "-"
    say = sys.stderr if to_stdout else sys.stdout  # stdout carries only the JSON lines then

    def note(message: str) -> None:
        print(message, file=say, flush=True)

    name = _detector_name(cfg)
    timeout = _optional_number(cfg.stream_timeout_s, "stream_timeout_s", 0.1, 3600)
    smooth = cfg.get("smooth")
    smooth = True if smooth is None else bool(smooth)  # on by default for live input
    options = smoothing_options(cfg) if smooth else None
    model = load_lifter(cfg.checkpoint, cfg.device)
    smoother = None
    if smooth:
        from glagcn.smoothing import OneEuroFilter

        smoother = OneEuroFilter(**options)
    detect, close_detector = _live_detector(cfg, name)
    try:
        source = open_source(cfg.video, timeout, timeout)
    except BaseException:
        close_detector()
        raise
    fps = fps_given or source.fps or 25.0
    stem = _stream_name(source)
    lifter = OnlineLifter(model, bool(cfg.flip_test), cfg.device)
    jsonl = None if to_stdout else out / "poses_3d.jsonl"
    sink = sys.stdout if to_stdout else open(jsonl, "w", encoding="utf-8")  # noqa: SIM115
    session = LiveSession(detect, name, lifter, (source.width, source.height), sink, smoother)
    note(
        f"live: {source.name} ({source.width}x{source.height}, {fps:g} frames/s), {name}, "
        f"the {model.receptive_field}-frame {'causal' if lifter.causal else 'symmetric'} model "
        f"(pose latency: processing time + {lifter.delay_frames} frames), smoothing "
        f"{options if smooth else 'off'} -> {jsonl or 'stdout'}"
    )
    interrupted = False
    written: dict = {}
    try:
        with source:
            for index, timestamp, frame in source:
                session.process(index, timestamp, frame)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # everything done so far is written whatever ended the stream
        close_detector()
        session.finish()
        if not to_stdout:
            sink.close()
            written["jsonl"] = str(jsonl)
        written.update(_write_live(cfg, out, session, source, stem, fps))
    done = (
        f"{len(session.record)} frames ({session.people_frames} with a person) -> "
        f"{', '.join(sorted(Path(p).name for p in written.values()))} in {out}"
    )
    if source.dropped:
        done += f"; {source.dropped} frames skipped to keep up with the source"
    note(f"live: {done}")
    if interrupted:
        raise KeyboardInterrupt
    if session.people_frames == 0:
        raise KeypointInputError(
            f"nobody was detected in {source.name} ({len(session.record)} frames, "
            f"{_detector_description(cfg, name)}); check that it shows a person"
        )
    source.check_stopped(kept=f"the {len(session.record)} frames before are kept in {out}")
    return written


def _write_live(cfg: DictConfig, out: Path, session, source, stem: str, fps: float) -> dict:
    record = session.record
    written: dict = {}
    if record.detections:
        last = max(record.detections)
        empty = (np.zeros((0, 5), np.float32), np.zeros((0, 4, 17), np.float32))
        per_frame = [record.detections.get(i, empty) for i in range(last + 1)]
        written["detections"] = str(
            write_detectron_npz(
                out / f"detections_{stem}.npz",
                [b for b, _ in per_frame],
                [k for _, k in per_frame],
                source.width,
                source.height,
            )
        )
    if not len(record):
        return written
    poses = np.stack(record.poses_3d).astype(np.float32)
    valid = np.isfinite(poses).all(axis=(1, 2))
    result = LiftResult(
        poses,
        np.stack(record.keypoints_2d).astype(np.float32),
        np.asarray(record.frame_indices),
        valid,
        np.zeros((len(poses), 17), dtype=bool),
    )
    written.update(
        _write_poses(out, result, (source.name, "live"), 0, (source.width, source.height), fps)
    )
    if cfg.export == "bvh" and valid.any():
        written["bvh"] = _export_bvh(out, poses, fps, cfg.bvh_girdle)
    return written
