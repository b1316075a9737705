"""Speed of the in-the-wild path: video -> 2D -> smoothed -> 3D, live latency, lifting a long
track, and Keypoint R-CNN per frame.

``python benchmarks/bench_wild.py [--out DIR] [--video-frames 120] [--skip-video] [--skip-lift]
[--skip-detector]`` writes into ``benchmarks/bench_wild/`` (or ``--out``):

``video_cpu.json/.md`` -- frames/s of a video file to 3D poses with no rendering, as
``predict.py video=... render=false smooth=true`` runs it: decode + detect every frame, read the
detections back, One-Euro smoothing, lift (test-time flip).  The clip pans and zooms over a real
photograph (``skimage.data.astronaut()``) at 1280x720 and 1920x1080.  BlazePose and Keypoint
R-CNN in the same run (R-CNN on ``--rcnn-frames`` frames: it is about 0.3 frames/s), with the
paper-size lifter (96 channels) at 27 frames (causal and symmetric), 81 and 243 frames.  Each
detector's decode + detect is timed once per size; each model's smoothing + lifting once on
that track (their sum: one after the other); with BlazePose, end to end is timed as
``predict.py`` runs it, the lifting overlapped with detection (``LiftAhead``).  The
headline setting (BlazePose, 27 frames, 720p) is also timed as one real ``predict()`` call.
``live_cpu.json/.md`` -- live mode on the 720p clip (``live=true``, BlazePose): per-frame
processing time (decode, detect, smooth, lift one window, write the JSON line) and the pose
latency it gives at the clip's frame rate (a symmetric model waits ``pad`` frames more).

``astronaut_lift_frames.png`` -- the README's picture: ``predict.py`` on the 720p clip with
rendering (:func:`write_picture`).

``lift_cpu.json/.md`` (a ``--frames``-frame COCO-17
track written as a COCO JSON file, read, tracked, prepared and lifted with the paper-sized
model and test-time flip, as ``predict.py`` does) and ``detector_cpu.json/.md`` (Keypoint
R-CNN seconds per frame, median call, for several people per frame and batch sizes, taking
turns).  The
models have random weights: their cost is that of trained ones (the detector is told to keep
exactly ``people`` boxes per frame, so its keypoint head does the work of that many people).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from glagcn.keypoints import (
    KeypointSequence,
    build_tracks,
    choose_track,
    prepare_h36m,
    read_detections,
    track_sequence,
)
from glagcn.lift import lift_prepared, load_lifter
from glagcn.model import build_model
from glagcn.skeleton import H36M_17
from trilab.bench import Column, Timing, command_line, interleaved, machine, write_report
from trilab.checkpoint import save_checkpoint

COMMAND = "python benchmarks/bench_wild.py"
RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/
PAPER_MODEL = {
    "receptive_field": 243,
    "channels": 96,
    "temporal_kernel": 9,
    "output_layer": "per_joint",
    "sequence_branch": True,
    "temporal_padding": "authors",
}
WALKER = np.array(
    [
        [640, 200],
        [650, 190],
        [630, 190],
        [660, 195],
        [620, 195],
        [680, 250],
        [600, 250],
        [700, 310],
        [580, 310],
        [710, 370],
        [570, 370],
        [665, 380],
        [615, 380],
        [668, 450],
        [612, 450],
        [670, 520],
        [610, 520],
    ],
    dtype=np.float64,
)


def timed(function):
    """(its result, its Timing): one call, wall clock and this process's CPU time (all its
    threads: on a shared machine the steadier measure of the work)."""
    result = []
    timing = interleaved({"call": lambda: result.append(function())}, repeats=1, warmup=0)
    return result[0], timing["call"]


def write_track_json(path: Path, frames: int, seed: int = 0) -> Path:
    """A COCO-17 keypoint JSON as a detector writes it: one moving person, noisy, a few weak
    joints."""
    rng = np.random.default_rng(seed)
    time = np.arange(frames)
    sway = np.stack([60 * np.sin(time / 50.0), 10 * np.sin(time / 7.0)], axis=-1)
    keypoints = WALKER[None] + sway[:, None, :] + rng.normal(0, 2.0, (frames, 17, 2))
    scores = rng.uniform(0.5, 0.95, (frames, 17))
    scores[rng.random(scores.shape) < 0.03] = 0.1
    triples = np.concatenate([keypoints, scores[..., None]], axis=-1).round(2)
    path.write_text(
        json.dumps(
            [
                {
                    "image_id": f,
                    "category_id": 1,
                    "score": 0.9,
                    "keypoints": triples[f].ravel().tolist(),
                }
                for f in range(frames)
            ]
        )
    )
    return path


def bench_lift(
    frames: int, receptive_field: int, flip_test: bool = True, model_config: dict | None = None
) -> dict:
    config = dict(model_config or PAPER_MODEL, receptive_field=receptive_field)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint = scratch / "model.pt"
        model = build_model(config, H36M_17)
        save_checkpoint(
            checkpoint, model=model, epoch=0, extra={"model_config": config, "skeleton": "h36m17"}
        )
        track = write_track_json(scratch / "track.json", frames)
        model = load_lifter(checkpoint, "cpu")
        with torch.inference_mode():
            warm = min(frames, 2 * model.receptive_field)

            def read_track():
                detections = read_detections(track)
                tracks = build_tracks(detections)
                return track_sequence(detections, choose_track(tracks, None, str(track)))

            sequence, read = timed(read_track)
            prepared, prepare = timed(lambda: prepare_h36m(sequence))
            short = prepare_h36m(
                KeypointSequence(
                    sequence.keypoints[:warm],
                    sequence.scores[:warm],
                    sequence.frame_indices[:warm],
                    sequence.layout,
                    sequence.source,
                    sequence.score_rule,
                )
            )
            lift_prepared(short, (1280, 720), model, flip_test)  # warm-up, not timed
            poses, lifting = timed(lambda: lift_prepared(prepared, (1280, 720), model, flip_test))
    assert np.isfinite(poses).all()
    total = read.median + prepare.median + lifting.median
    return {
        "frames": frames,
        "receptive_field": model.receptive_field,
        "channels": config["channels"],
        "flip_test": flip_test,
        "read_track_s": read.median,
        "prepare_s": prepare.median,
        "lift_s": lifting.median,
        "lift_frames_per_s": frames / lifting.median,
        "lift_cpu_s": lifting.summary()["cpu_median"],
        "threads": torch.get_num_threads(),
        "load_average_15min": _load_average(),
        "end_to_end_frames_per_s": frames / total,
    }


def bench_detector(
    sizes: list[tuple[int, int]],
    people: list[int],
    batches: list[int],
    rounds: int,
    min_size: int = 800,
    proposals: int = 1000,
) -> list[dict]:
    """Seconds per frame of every (size, people, batch) setting, from its median call.  The
    settings take turns (one call each per round, after an untimed warm-up round), so load
    from other jobs on a shared machine falls on all of them alike."""
    from glagcn import detect

    rng = np.random.default_rng(0)
    images = {
        size: [
            torch.from_numpy(rng.random((3, size[1], size[0]), dtype=np.float32))
            for _ in range(max(batches))
        ]
        for size in sizes
    }
    detectors = {
        count: detect.build_detector(
            "random", score_threshold=0.0, max_people=count, min_size=min_size, proposals=proposals
        )
        for count in people
    }
    settings = {
        f"{size[0]}x{size[1]} people={count} batch={batch}": (size, count, batch)
        for size in sizes
        for count in people
        for batch in batches
    }
    kept: dict = {}

    def call(name: str) -> None:
        size, count, batch = settings[name]
        outputs = detectors[count](images[size][:batch])
        kept[name] = int(np.mean([len(o["boxes"]) for o in outputs]))

    with torch.inference_mode():
        timings: dict[str, Timing] = interleaved(
            {name: (lambda n=name: call(n)) for name in settings}, repeats=rounds, warmup=1
        )
    rows = []
    for name, (size, count, batch) in settings.items():
        timing = timings[name]
        rows.append(
            {
                "width": size[0],
                "height": size[1],
                "min_size": min_size,
                "proposals": proposals,
                "people": count,
                "boxes_kept": kept[name],
                "batch": batch,
                "frames_timed": rounds * batch,
                "seconds_per_frame": timing.median / batch,
                "cpu_seconds_per_frame": timing.summary()["cpu_median"] / batch,
                "spread": timing.spread,
                "load_average_15min": _load_average(),
                "threads": torch.get_num_threads(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _load_average(which: int = 2) -> float | None:
    """The machine's 1/5/15-minute (``which`` 0/1/2) load average at the end of a measurement
    (None where unknown): above this process's thread count, other jobs competed."""
    load = machine()["load_average_1_5_15min"]
    return load[which] if load else None


def _load_note(load: float | None, threads: int) -> str:
    cores = os.cpu_count() or 0
    if load is None:
        return "Machine load not recorded."
    busy = (
        "other jobs competed for the cores" if load > threads + 0.5 else "no other job of note ran"
    )
    return f"Load average over the last 15 minutes: {load:.1f} on {cores} cores ({busy})."


STAGE_COLUMNS = (
    Column("stage", "stage"),
    Column("seconds", "seconds", "{:.2f}"),
    Column(
        "frames/s",
        value=lambda r: (
            f"**{r['frames_per_s']:.1f}**" if r["stage"] == "lift" else f"{r['frames_per_s']:,.1f}"
        ),
    ),
)


def write_lift(out: Path, row: dict, command: str = COMMAND) -> Path:
    """``lift_cpu.json`` (the measurement's fields at the top level, its stages as rows) and
    ``lift_cpu.md``."""
    frames = row["frames"]
    total = row["read_track_s"] + row["prepare_s"] + row["lift_s"]
    stages = [
        {"stage": name, "seconds": seconds, "frames_per_s": frames / seconds}
        for name, seconds in (
            ("read COCO JSON + track + choose person", row["read_track_s"]),
            ("missing joints, gaps, H36M-17", row["prepare_s"]),
            ("lift", row["lift_s"]),
            ("end to end", total),
        )
    ]
    notes = [
        f"Lifting used {row['lift_cpu_s']:.0f} s of CPU time, torch threads: "
        f"{row['threads']}: "
        f"{row['lift_cpu_s'] / frames:.3f} CPU-s per frame, "
        f"{frames * row['threads'] / row['lift_cpu_s']:.1f} frames/s if its threads had "
        "the cores to themselves (wall-clock seconds above include any waiting for other "
        "jobs).",
        f"Lift: the {row['receptive_field']}-frame model, C = {row['channels']}, test-time "
        f"flip {'on' if row['flip_test'] else 'off'}.  One pose per input frame (each "
        "frame is the centre of its own receptive-field window; "
        "the flip test runs the mirrored track through the same calls).  Random weights "
        "(the cost of trained ones).  " + _load_note(row.get("load_average_15min"), row["threads"]),
    ]
    _, md = write_report(
        out / "lift_cpu",
        stages,
        STAGE_COLUMNS,
        f"Lifting a {frames:,}-frame track",
        command,
        notes=notes,
        extra=row,
    )
    return md


DETECTOR_COLUMNS = (
    Column("frame", value=lambda r: f"{r['width']}x{r['height']}"),
    Column("resized to (shorter side)", "min_size"),
    Column("people per frame", "boxes_kept"),
    Column("batch", "batch"),
    Column("s/frame (wall)", "seconds_per_frame", "{:.2f}"),
    Column("CPU-s/frame", "cpu_seconds_per_frame", "{:.2f}"),
    Column("frames/s (wall)", value=lambda r: f"{1 / r['seconds_per_frame']:.2f}"),
)


def write_detector(out: Path, rows: list[dict], command: str = COMMAND) -> Path:
    notes = [
        "torchvision `keypointrcnn_resnet50_fpn` with random weights told to keep exactly "
        "that many people (box score threshold 0): the same operations as the trained "
        "model finding that many people.  torchvision resizes every frame to a shorter "
        "side of 800 px (`detector_min_size`), so the frame size matters little. "
        f"CPU-s = this process's CPU time (torch threads: "
        f"{rows[0]['threads'] if rows else '?'}); "
        "the settings took turns, one call each per round; median call.  "
        + (_load_note(rows[-1].get("load_average_15min"), rows[-1]["threads"]) if rows else "")
    ]
    _, md = write_report(
        out / "detector_cpu",
        rows,
        DETECTOR_COLUMNS,
        "Keypoint R-CNN per frame",
        command,
        notes=notes,
    )
    return md


# --- video file -> 2D -> smoothed -> 3D, and live latency -------------------------------------


def paper_model(name: str) -> dict:
    """``27`` / ``27c`` (causal) / ``81`` / ``243``: the paper-size lifter config."""
    causal = name.endswith("c")
    return dict(PAPER_MODEL, receptive_field=int(name.rstrip("c")), causal=causal)


def save_random_lifter(path: Path, config: dict) -> Path:
    save_checkpoint(
        path,
        model=build_model(config, H36M_17),
        epoch=0,
        extra={"model_config": config, "skeleton": "h36m17"},
    )
    return path


def photo_clip(folder: Path, size: tuple[int, int], frames: int, fps: float = 30.0) -> Path:
    """The benchmark's clip: a pan and zoom over a real photograph of a person."""
    import skimage.data

    from glagcn.video_io import write_photo_clip

    path = folder / f"astronaut_{size[0]}x{size[1]}.mp4"
    return write_photo_clip(path, skimage.data.astronaut(), size, frames, fps)


def _detect_clip(clip: Path, detector: str, frames: int | None) -> tuple[Path, tuple, int]:
    """Decode + detect the first ``frames`` frames; (detections npz, (wall, CPU) seconds,
    people found)."""
    import time

    from glagcn import detect
    from glagcn.keypoints.videopose3d import write_detectron_npz
    from glagcn.video_io import iter_frames, video_info

    info = video_info(clip)
    boxes, keypoints = [], []
    if detector == "blazepose":
        model = detect.BlazePose()
        model(next(iter_frames(clip))[1])  # load the models: not timed
        model.close()
        model = detect.BlazePose()  # a fresh tracker, warm caches

        def run(frame):
            return model(frame)
    else:
        # untrained weights told to keep one person: the trained model's cost for one person
        rcnn = detect.build_detector("random", score_threshold=0.0, max_people=1)

        @torch.inference_mode()
        def run(frame):
            image = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0)
            return detect._to_arrays(rcnn([image])[0])

        run(next(iter_frames(clip))[1])  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    # as predict.py's BlazePose pass: decoding ahead in a thread, overlapped with detection
    prefetch = 4 if detector == "blazepose" else 0
    for index, frame in iter_frames(clip, prefetch=prefetch):
        if frames is not None and index >= frames:
            break
        frame_boxes, frame_keypoints = run(frame)
        boxes.append(frame_boxes)
        keypoints.append(frame_keypoints)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if detector == "blazepose":
        model.close()
    path = write_detectron_npz(
        clip.with_name(f"{clip.stem}_{detector}.npz"), boxes, keypoints, info.width, info.height
    )
    return path, (seconds, cpu_seconds), sum(len(b) for b in boxes)


def _lift_detections(detections: Path, checkpoint: Path, fps: float) -> tuple[float, float]:
    """Read the detections back, choose the person, smooth, lift: (wall, CPU) seconds, after
    one untimed warm-up run."""
    import time

    from glagcn.lift import lift_track, video_max_windows
    from glagcn.smoothing import smooth_sequence

    model = load_lifter(checkpoint, "cpu")

    def run():
        found = read_detections(detections)
        sequence = track_sequence(found, choose_track(build_tracks(found), None, str(detections)))
        result = lift_track(
            sequence,
            found.image_size,
            model,
            smooth=lambda keypoints: smooth_sequence(keypoints, fps),
            max_windows=video_max_windows("cpu", model.receptive_field),
        )
        assert np.isfinite(result.poses_3d).all()

    run()
    start, cpu_start = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - start, time.process_time() - cpu_start


def _video_cfg(clip: Path, checkpoint: Path, output: Path):
    """predict.py's configuration for ``video=clip`` (no rendering, smoothing on)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "predict.yaml")
    cfg.pop("hydra")
    return OmegaConf.merge(
        cfg,
        {
            "video": str(clip),
            "checkpoint": str(checkpoint),
            "output": str(output),
            "render": False,
            "smooth": True,
            "progress": False,
            "detector": "blazepose",
        },
    )


def _overlapped(clip: Path, checkpoint: Path, frames: int) -> dict:
    """predict.py's video path as it runs, with the models loaded beforehand (as the other
    columns): BlazePose on the main thread with :class:`glagcn.predict.LiftAhead` lifting
    beside it, then the detections read back, smoothed and lifted through its chunk cache.
    (wall, CPU) seconds and the chunks lifted during detection."""
    import time

    from glagcn import detect, predict
    from glagcn.keypoints.videopose3d import write_detectron_npz
    from glagcn.lift import lift_track
    from glagcn.video_io import iter_frames, video_info

    cfg = _video_cfg(clip, checkpoint, clip.parent / "overlapped")
    given = predict._options(cfg)
    info = video_info(clip)
    smooth = predict._smoother(cfg, predict._fps(given, info))
    model = load_lifter(checkpoint, "cpu")
    warm = detect.BlazePose()
    warm(next(iter_frames(clip))[1])  # load the models: not timed
    warm.close()
    detector = detect.BlazePose()
    boxes, keypoints = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    ahead = predict.LiftAhead(cfg, given, info, model, smooth)
    try:
        for index, frame in iter_frames(clip, prefetch=4):
            if index >= frames:
                break
            frame_boxes, frame_keypoints = detector(frame)
            boxes.append(frame_boxes)
            keypoints.append(frame_keypoints)
            ahead.add(frame_boxes, frame_keypoints)
    finally:
        ahead.close()
        detector.close()
    path = write_detectron_npz(
        clip.with_name(f"{clip.stem}_overlapped.npz"), boxes, keypoints, info.width, info.height
    )
    found = read_detections(path)
    sequence = track_sequence(found, choose_track(build_tracks(found), None, str(path)))
    result = lift_track(
        sequence,
        found.image_size,
        ahead.cache,
        smooth=smooth,
        max_windows=ahead.max_windows,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert np.isfinite(result.poses_3d).all()
    return {
        "overlapped_s": seconds,
        "overlapped_cpu_s": cpu_seconds,
        "chunks_lifted_ahead": ahead.cache.hits,
        "chunks": ahead.cache.hits + ahead.cache.misses,
    }


def bench_video(
    sizes: list[tuple[int, int]],
    models: list[str],
    frames: int,
    rcnn_frames: int,
    detectors: tuple[str, ...] = ("blazepose", "keypoint_rcnn"),
    fps: float = 30.0,
) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoints = {
            name: save_random_lifter(scratch / f"lifter_{name}.pt", paper_model(name))
            for name in models
        }
        for size in sizes:
            clip = photo_clip(scratch, size, frames, fps)
            for detector in detectors:
                count = frames if detector == "blazepose" else min(rcnn_frames, frames)
                detections, (detect_s, detect_cpu), people = _detect_clip(clip, detector, count)
                for name in models:
                    lift_s, lift_cpu = _lift_detections(detections, checkpoints[name], fps)
                    overlapped = {}
                    if detector == "blazepose":
                        overlapped = _overlapped(clip, checkpoints[name], count)
                    config = paper_model(name)
                    row = {
                        "width": size[0],
                        "height": size[1],
                        "detector": detector,
                        "frames": count,
                        "frames_with_person": people,
                        "receptive_field": config["receptive_field"],
                        "causal": config["causal"],
                        "channels": config["channels"],
                        "decode_detect_s": detect_s,
                        "read_smooth_lift_s": lift_s,
                        "decode_detect_cpu_s": detect_cpu,
                        "read_smooth_lift_cpu_s": lift_cpu,
                        "detect_frames_per_s": count / detect_s,
                        "sequential_frames_per_s": count / (detect_s + lift_s),
                        **overlapped,
                        "end_to_end_frames_per_s": count
                        / overlapped.get("overlapped_s", detect_s + lift_s),
                        "end_to_end_cpu_s_per_frame": overlapped.get(
                            "overlapped_cpu_s", detect_cpu + lift_cpu
                        )
                        / count,
                        "threads": torch.get_num_threads(),
                        "load_average_1min": _load_average(0),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        rows.append(_predict_call(scratch, sizes[0], checkpoints[models[0]], frames, fps))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _predict_call(
    scratch: Path, size: tuple[int, int], checkpoint: Path, frames: int, fps: float
) -> dict:
    """The headline setting as one real predict() call (no rendering, smoothing on)."""
    from glagcn.predict import predict

    clip = scratch / f"astronaut_{size[0]}x{size[1]}.mp4"
    cfg = _video_cfg(clip, checkpoint, scratch / "predict")
    _, timing = timed(lambda: predict(cfg))
    model = load_lifter(checkpoint, "cpu")
    return {
        "width": size[0],
        "height": size[1],
        "detector": "blazepose (predict() call)",
        "frames": frames,
        "receptive_field": model.receptive_field,
        "causal": bool(getattr(model, "causal", False)),
        "channels": PAPER_MODEL["channels"],
        "seconds": timing.median,
        "end_to_end_frames_per_s": frames / timing.median,
        "threads": torch.get_num_threads(),
        "load_average_1min": _load_average(0),
    }


def bench_live(size: tuple[int, int], models: list[str], frames: int, fps: float = 30.0) -> list:
    """Live mode on a file (every frame processed, none skipped): per-frame processing time
    and the pose latency it gives at ``fps``."""
    import io
    import time

    from glagcn.detect import BlazePose
    from glagcn.live import LiveSession, OnlineLifter
    from glagcn.smoothing import OneEuroFilter
    from glagcn.video_io import open_source

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        # steady state: every timed frame gives a pose, also after a 243-frame model's wait
        longest_wait = max((paper_model(name)["receptive_field"] - 1) // 2 for name in models)
        clip = photo_clip(scratch, size, frames + longest_wait + 5, fps)
        for name in models:
            config = paper_model(name)
            model = load_lifter(save_random_lifter(scratch / f"{name}.pt", config), "cpu")
            lifter = OnlineLifter(model, flip_test=True, threads=1)
            lifter._lift(np.zeros((model.receptive_field, 17, 2)))  # warm-up, not timed
            with BlazePose() as detector, open_source(clip) as source:
                session = LiveSession(
                    detector, "blazepose", lifter, size, io.StringIO(), OneEuroFilter()
                )
                per_frame = []
                frames_in = iter(source)
                while True:
                    start = time.perf_counter()
                    try:
                        index, timestamp, frame = next(frames_in)
                    except StopIteration:
                        break
                    session.process(index, timestamp, frame)
                    per_frame.append(time.perf_counter() - start)
                session.finish()
            # from the first frame whose arrival releases a pose, plus 5 to warm up
            first = lifter.delay_frames + 5
            per_frame = np.asarray(per_frame[first : first + frames])
            row = {
                "width": size[0],
                "height": size[1],
                "receptive_field": model.receptive_field,
                "causal": lifter.causal,
                "frames": len(per_frame),
                "processing_ms_median": 1000 * float(np.median(per_frame)),
                "processing_ms_p95": 1000 * float(np.percentile(per_frame, 95)),
                "delay_frames": lifter.delay_frames,
                "latency_ms_at_fps": 1000
                * (float(np.median(per_frame)) + lifter.delay_frames / fps),
                "camera_fps": fps,
                "threads": torch.get_num_threads(),
                "load_average_1min": _load_average(0),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


VIDEO_COLUMNS = (
    Column("frame", value=lambda r: f"{r['width']}x{r['height']}"),
    Column("detector", "detector"),
    Column(
        "lifter",
        value=lambda r: f"{r['receptive_field']} frames{' causal' if r['causal'] else ''}",
    ),
    Column("frames", "frames"),
    Column("decode + detect frames/s", "detect_frames_per_s", "{:.1f}"),
    Column("read + smooth + lift s", "read_smooth_lift_s", "{:.2f}"),
    Column("one after the other frames/s", "sequential_frames_per_s", "{:.1f}"),
    Column(
        "chunks lifted during detection",
        value=lambda r: f"{r['chunks_lifted_ahead']} of {r['chunks']}" if "chunks" in r else None,
    ),
    Column("CPU-ms/frame", value=lambda r: _cpu_ms(r)),
    Column(
        "end to end frames/s",
        value=lambda r: (
            f"**{r['end_to_end_frames_per_s']:.1f}**"
            if r["end_to_end_frames_per_s"] >= 1
            else f"{r['end_to_end_frames_per_s']:.2f}"
        ),
    ),
)


def _cpu_ms(row: dict) -> str | None:
    cpu = row.get("end_to_end_cpu_s_per_frame")
    return None if cpu is None else f"{1000 * cpu:.0f}"


def write_video(out: Path, rows: list[dict], command: str = COMMAND) -> Path:
    loads = [r["load_average_1min"] for r in rows if r.get("load_average_1min") is not None]
    notes = [
        "A video file to 3D poses with no rendering: decode + detect every frame, then read "
        "the detections back, choose the person, One-Euro smoothing (min_cutoff 1.0, beta "
        "0.007), lift with test-time flip.  One after the other = frames / (detect s + lift "
        "s), each timed alone.  End to end (BlazePose): predict.py's path as it runs, timed "
        "once: the lifting overlapped with detection (LiftAhead: a worker thread on one torch "
        "thread lifts the chunks of 16 windows that later frames cannot change; the rest, "
        "at least the last pad frames' windows, after the video ends), models loaded "
        "beforehand; its poses are bit for bit the sequential ones (tested).  "
        "Keypoint R-CNN rows: one after the other.  The "
        "clip pans and zooms over skimage.data.astronaut(): BlazePose finds her in every "
        "frame.  CPU-ms/frame: this process's CPU time (all threads) per frame, the work "
        "whatever the load.  Keypoint R-CNN: torchvision's model with untrained weights "
        "told to keep one person (its cost; no weights download), on the first few frames "
        "only.  Lifters: "
        "random weights, paper size (96 channels, per-joint output, sequence branch).  The "
        "row 'predict() call' is the headline setting run as one real `predict()` call "
        "(the clip's 30 frames/s, smoothing on, render=false).",
        "Load: "
        + (
            f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on "
            f"{os.cpu_count()} cores during the run (other jobs shared the cores; on an idle "
            "machine the figures are higher)."
            if loads
            else "not recorded."
        ),
    ]
    _, md = write_report(
        out / "video_cpu",
        rows,
        VIDEO_COLUMNS,
        "Video file -> 2D -> smoothed -> 3D (no rendering)",
        command,
        notes=notes,
    )
    return md


LIVE_COLUMNS = (
    Column("frame", value=lambda r: f"{r['width']}x{r['height']}"),
    Column(
        "lifter",
        value=lambda r: f"{r['receptive_field']} frames{' causal' if r['causal'] else ''}",
    ),
    Column("frames", "frames"),
    Column("processing ms/frame (median)", "processing_ms_median", "{:.1f}"),
    Column("p95", "processing_ms_p95", "{:.1f}"),
    Column("look-ahead frames", "delay_frames"),
    Column("pose latency ms at {camera_fps:g} frames/s", "latency_ms_at_fps", "{:.0f}"),
)


def write_live(out: Path, rows: list[dict], command: str = COMMAND) -> Path:
    loads = [r["load_average_1min"] for r in rows if r.get("load_average_1min") is not None]
    notes = [
        "Live mode (`live=true`) on the 720p clip, BlazePose, One-Euro smoothing, "
        "test-time flip, one torch thread for the per-window lift (as `predict.py` live): "
        "processing = decode + detect + smooth + lift one window + write "
        "the JSON line, per frame, timed once every frame releases a pose (after the "
        "look-ahead wait and 5 more frames).  A causal lifter's pose comes "
        "out after that processing; a symmetric one waits for its look-ahead frames too "
        "(pad = (RF - 1) / 2 frames of the camera).  Processing slower than the camera "
        "makes the live reader skip to the newest frame rather than queue.",
        "Load: "
        + (
            f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} "
            "cores during the run."
            if loads
            else "not recorded."
        ),
    ]
    _, md = write_report(
        out / "live_cpu", rows, LIVE_COLUMNS, "Live latency per frame", command, notes=notes
    )
    return md


def write_picture(out: Path, size: tuple[int, int] = (1280, 720), frames: int = 60) -> Path:
    """``astronaut_lift_frames.png``: ``predict.py video=... render=true`` on the pan/zoom clip
    of the real photograph (BlazePose, smoothing on, a random-weight 27-frame lifter: the 2D
    panel is the detector's real output, the 3D panel only shows the drawing)."""
    import shutil

    from omegaconf import OmegaConf

    from glagcn.predict import predict

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        clip = photo_clip(scratch, size, frames)
        checkpoint = save_random_lifter(scratch / "lifter.pt", paper_model("27"))
        cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "predict.yaml")
        cfg.pop("hydra")
        cfg = OmegaConf.merge(
            cfg,
            {
                "video": str(clip),
                "checkpoint": str(checkpoint),
                "output": str(scratch / "out"),
                "smooth": True,
                "progress": False,
                "detector": "blazepose",
                "render_format": "gif",
            },
        )
        written = predict(cfg)
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(written["frames_png"], out / "astronaut_lift_frames.png"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--video-frames", type=int, default=120)
    parser.add_argument("--video-sizes", default="1280x720,1920x1080")
    parser.add_argument("--video-models", default="27,27c,81,243")
    parser.add_argument("--rcnn-frames", type=int, default=3)
    parser.add_argument("--skip-video", action="store_true")
    parser.add_argument("--skip-picture", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--receptive-field", type=int, default=243)
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--detector-rounds", type=int, default=3)
    parser.add_argument("--detector-sizes", default="1280x720")
    parser.add_argument("--detector-people", default="1,5")
    parser.add_argument("--detector-batches", default="1,4")
    parser.add_argument("--detector-min-size", type=int, default=800)
    parser.add_argument("--skip-lift", action="store_true")
    parser.add_argument("--skip-detector", action="store_true")
    args = parser.parse_args(argv)
    command = command_line(argv, script=__file__)
    if not args.skip_picture:
        print(f"picture: {write_picture(args.out)}", flush=True)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.video_sizes.split(",")]
    models = args.video_models.split(",")
    if not args.skip_video:
        video = bench_video(sizes, models, args.video_frames, args.rcnn_frames)
        write_video(args.out, video, command)
    if not args.skip_live:
        live = bench_live(sizes[0], models, args.video_frames)
        write_live(args.out, live, command)
    if not args.skip_lift:
        row = bench_lift(args.frames, args.receptive_field, not args.no_flip)
        print(json.dumps(row), flush=True)
        write_lift(args.out, row, command)
    if not args.skip_detector:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.detector_sizes.split(",")]
        rows = bench_detector(
            sizes,
            [int(v) for v in args.detector_people.split(",")],
            [int(v) for v in args.detector_batches.split(",")],
            args.detector_rounds,
            args.detector_min_size,
        )
        write_detector(args.out, rows, command)


if __name__ == "__main__":
    main()
