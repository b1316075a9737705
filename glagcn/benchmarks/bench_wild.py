"""Speed of the in-the-wild path: lifting a long track, and the person detector per frame.

``python benchmarks/bench_wild.py --out benchmarks [--frames 10000] [--receptive-field 243]
[--skip-lift] [--skip-detector]`` writes ``lift_cpu.json/.md`` (a ``--frames``-frame COCO-17
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

COMMAND = "python benchmarks/bench_wild.py --out benchmarks"
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


def _load_average() -> float | None:
    """The machine's 15-minute load average at the end of a measurement (None where unknown):
    above this process's thread count, other jobs competed for the cores."""
    load = machine()["load_average_1_5_15min"]
    return load[2] if load else None


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
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
