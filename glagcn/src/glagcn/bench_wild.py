"""Speed of the in-the-wild path: lifting a long track, and the person detector per frame.

``python -m glagcn.bench_wild --out benchmarks [--frames 10000] [--receptive-field 243]
[--skip-lift] [--skip-detector]`` writes ``lift_cpu.json/.md`` (a ``--frames``-frame COCO-17
track written as a COCO JSON file, read, tracked, prepared and lifted with the paper-sized
model and test-time flip, as ``predict.py`` does) and ``detector_cpu.json/.md`` (Keypoint
R-CNN seconds per frame for several people per frame and batch sizes, taking turns).  The
models have random weights: their cost is that of trained ones (the detector is told to keep
exactly ``people`` boxes per frame, so its keypoint head does the work of that many people).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
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
from trilab.checkpoint import save_checkpoint
from trilab.metrics import Timer

COMMAND = "python -m glagcn.bench_wild --out benchmarks"
PAPER_MODEL = {"receptive_field": 243, "channels": 96, "temporal_kernel": 9,
               "output_layer": "per_joint", "sequence_branch": True,
               "temporal_padding": "authors"}
WALKER = np.array([
    [640, 200], [650, 190], [630, 190], [660, 195], [620, 195], [680, 250], [600, 250],
    [700, 310], [580, 310], [710, 370], [570, 370], [665, 380], [615, 380], [668, 450],
    [612, 450], [670, 520], [610, 520]], dtype=np.float64)


class CpuTimer(Timer):
    """Wall clock and this process's CPU time (all its threads).  On a shared machine the CPU
    time is the steadier measure of the work; wall / CPU shows how much others slowed it."""

    def __enter__(self) -> CpuTimer:
        self._cpu_start = time.process_time()
        return super().__enter__()

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        self.cpu_seconds = time.process_time() - self._cpu_start


def device_name() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


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
    path.write_text(json.dumps([{"image_id": f, "category_id": 1, "score": 0.9,
                                 "keypoints": triples[f].ravel().tolist()}
                                for f in range(frames)]))
    return path


def bench_lift(frames: int, receptive_field: int, flip_test: bool = True,
               model_config: dict | None = None) -> dict:
    config = dict(model_config or PAPER_MODEL, receptive_field=receptive_field)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint = scratch / "model.pt"
        model = build_model(config, H36M_17)
        save_checkpoint(checkpoint, model=model, epoch=0,
                        extra={"model_config": config, "skeleton": "h36m17"})
        track = write_track_json(scratch / "track.json", frames)
        model = load_lifter(checkpoint, "cpu")
        with torch.inference_mode():
            warm = min(frames, 2 * model.receptive_field)
            with Timer() as read:
                detections = read_detections(track)
                tracks = build_tracks(detections)
                sequence = track_sequence(detections, choose_track(tracks, None, str(track)))
            with Timer() as prepare:
                prepared = prepare_h36m(sequence)
            short = prepare_h36m(KeypointSequence(
                sequence.keypoints[:warm], sequence.scores[:warm], sequence.frame_indices[:warm],
                sequence.layout, sequence.source, sequence.score_rule))
            lift_prepared(short, (1280, 720), model, flip_test)  # warm-up, not timed
            with CpuTimer() as lifting:
                poses = lift_prepared(prepared, (1280, 720), model, flip_test)
    assert np.isfinite(poses).all()
    total = read.seconds + prepare.seconds + lifting.seconds
    return {"frames": frames, "receptive_field": model.receptive_field,
            "channels": config["channels"], "flip_test": flip_test,
            "read_track_s": read.seconds, "prepare_s": prepare.seconds,
            "lift_s": lifting.seconds, "lift_frames_per_s": frames / lifting.seconds,
            "lift_cpu_s": lifting.cpu_seconds, "threads": torch.get_num_threads(),
            "load_average_15min": _load_average(),
            "end_to_end_frames_per_s": frames / total}


def bench_detector(sizes: list[tuple[int, int]], people: list[int], batches: list[int],
                   rounds: int, min_size: int = 800, proposals: int = 1000) -> list[dict]:
    """Seconds per frame of every (size, people, batch) setting.  The settings take turns
    (one call each per round, after an untimed warm-up round), so load from other jobs on a
    shared machine falls on all of them alike."""
    from glagcn import detect

    rng = np.random.default_rng(0)
    images = {size: [torch.from_numpy(rng.random((3, size[1], size[0]), dtype=np.float32))
                     for _ in range(max(batches))] for size in sizes}
    detectors = {count: detect.build_detector("random", score_threshold=0.0, max_people=count,
                                              min_size=min_size, proposals=proposals)
                 for count in people}
    settings = [(size, count, batch) for size in sizes for count in people for batch in batches]
    seconds = dict.fromkeys(settings, 0.0)
    cpu_seconds = dict.fromkeys(settings, 0.0)
    kept: dict = {}
    with torch.inference_mode():
        for round_number in range(rounds + 1):
            for size, count, batch in settings:
                with CpuTimer() as timer:
                    outputs = detectors[count](images[size][:batch])
                if round_number:  # round 0 warms up
                    seconds[(size, count, batch)] += timer.seconds
                    cpu_seconds[(size, count, batch)] += timer.cpu_seconds
                kept[(size, count, batch)] = int(np.mean([len(o["boxes"]) for o in outputs]))
    rows = []
    for size, count, batch in settings:
        frames = rounds * batch
        rows.append({"width": size[0], "height": size[1], "min_size": min_size,
                     "proposals": proposals, "people": count,
                     "boxes_kept": kept[(size, count, batch)], "batch": batch,
                     "frames_timed": frames,
                     "seconds_per_frame": seconds[(size, count, batch)] / frames,
                     "cpu_seconds_per_frame": cpu_seconds[(size, count, batch)] / frames,
                     "load_average_15min": _load_average(),
                     "threads": torch.get_num_threads()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _write(out: Path, name: str, payload: dict, lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def _load_average() -> float | None:
    """The machine's 15-minute load average at the end of a measurement (None where unknown):
    above this process's thread count, other jobs competed for the cores."""
    try:
        return os.getloadavg()[2]
    except (AttributeError, OSError):
        return None


def _load_note(load: float | None, threads: int) -> str:
    cores = os.cpu_count() or 0
    if load is None:
        return "Machine load not recorded."
    busy = "other jobs competed for the cores" if load > threads + 0.5 else \
        "no other job of note ran"
    return f"Load average over the last 15 minutes: {load:.1f} on {cores} cores ({busy})."


def write_lift(out: Path, row: dict, device: str, command: str = COMMAND) -> None:
    payload = {"device": device, "torch": torch.__version__, "command": command, **row}
    lines = [
        f"# Lifting a {row['frames']:,}-frame track ({device})", "",
        f"Command: `{command}`", "",
        "| stage | seconds | frames/s |", "|---|---|---|",
        f"| read COCO JSON + track + choose person | {row['read_track_s']:.2f} | "
        f"{row['frames'] / row['read_track_s']:,.0f} |",
        f"| missing joints, gaps, H36M-17 | {row['prepare_s']:.2f} | "
        f"{row['frames'] / row['prepare_s']:,.0f} |",
        f"| lift ({row['receptive_field']}-frame model, C = {row['channels']}, test-time flip "
        f"{'on' if row['flip_test'] else 'off'}) | {row['lift_s']:.1f} | "
        f"**{row['lift_frames_per_s']:.1f}** |",
        f"| end to end | {row['read_track_s'] + row['prepare_s'] + row['lift_s']:.1f} | "
        f"{row['end_to_end_frames_per_s']:.1f} |", "",
        f"Lifting used {row['lift_cpu_s']:.0f} s of CPU time on {row['threads']} threads: "
        f"{row['lift_cpu_s'] / row['frames']:.3f} CPU-s per frame, "
        f"{row['frames'] * row['threads'] / row['lift_cpu_s']:.1f} frames/s if its threads had "
        "the cores to themselves (wall-clock seconds above include any waiting for other "
        "jobs).", "",
        "One pose per input frame (each frame is the centre of its own 243-frame window; the "
        "flip test runs the mirrored track through the same calls).  Random weights (the cost "
        "of trained ones).  " + _load_note(row.get("load_average_15min"), row["threads"]),
    ]
    _write(out, "lift_cpu", payload, lines)


def write_detector(out: Path, rows: list[dict], device: str, command: str = COMMAND) -> None:
    payload = {"device": device, "torch": torch.__version__, "command": command, "rows": rows}
    lines = [f"# Keypoint R-CNN per frame ({device})", "",
             f"Command: `{command}`", "",
             "| frame | resized to (shorter side) | people per frame | batch | s/frame (wall) | "
             "CPU-s/frame | frames/s (wall) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['width']}x{row['height']} | {row['min_size']} | "
                     f"{row['boxes_kept']} | {row['batch']} | {row['seconds_per_frame']:.2f} | "
                     f"{row['cpu_seconds_per_frame']:.2f} | "
                     f"{1 / row['seconds_per_frame']:.2f} |")
    lines += ["", "torchvision `keypointrcnn_resnet50_fpn` with random weights told to keep "
              "exactly that many people (box score threshold 0): the same operations as the "
              "trained model finding that many people.  torchvision resizes every frame to a "
              "shorter side of 800 px (`detector_min_size`), so the frame size matters little. "
              f"CPU-s = this process's CPU time ({rows[0]['threads'] if rows else '?'} threads); "
              "the settings took turns, one call each per round.  "
              + (_load_note(rows[-1].get("load_average_15min"), rows[-1]["threads"])
                 if rows else "")]
    _write(out, "detector_cpu", payload, lines)


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
    command = " ".join(["python -m glagcn.bench_wild", *(sys.argv[1:] if argv is None else argv)])
    device = device_name()
    if not args.skip_lift:
        row = bench_lift(args.frames, args.receptive_field, not args.no_flip)
        print(json.dumps(row), flush=True)
        write_lift(args.out, row, device, command)
    if not args.skip_detector:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.detector_sizes.split(",")]
        rows = bench_detector(sizes, [int(v) for v in args.detector_people.split(",")],
                              [int(v) for v in args.detector_batches.split(",")],
                              args.detector_rounds, args.detector_min_size)
        write_detector(args.out, rows, device, command)


if __name__ == "__main__":
    main()
