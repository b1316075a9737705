"""Jitter with and without One-Euro smoothing of the 2D keypoints, in 2D and after lifting to 3D.

``python benchmarks/bench_smoothing.py --out benchmarks/bench_smoothing [--checkpoint CKPT]
[--noise-px 3] [--epochs 6]`` takes the synthetic generator's test subjects (S9, S11; every
action, camera 0, 50 frames/s), adds Gaussian pixel noise to their 2D joints as a detector's
jitter, smooths them with several (min_cutoff, beta) settings, and lifts each version with a
small GLA-GCN (the CPU demo model, ``model=small``, trained briefly on the synthetic training
subjects by ``train.py`` unless ``--checkpoint`` names one).  Writes ``smoothing.json/.md``:
MPJVE and MPJPE against the clean 2D track (pixels) and against the 3D ground truth (mm), and
``bvh_fidelity.json/.md``: how closely the BVH export of the lifted poses gives back each bone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glagcn.bvh import CAMERA_TO_BVH, GIRDLES, read_bvh, write_bvh
from glagcn.camera import (
    H36M_TEST_SUBJECTS,
    h36m_cameras,
    normalize_screen_coordinates,
    project_to_pixels,
    root_relative,
    world_to_camera,
)
from glagcn.data.synthesize import FPS, animate
from glagcn.evaluation import predict_sequence
from glagcn.lift import load_lifter
from glagcn.skeleton import H36M_17
from glagcn.smoothing import mpjve, smooth_sequence
from trilab.bench import Column, command_line, write_report

PROJECT = Path(__file__).resolve().parents[1]
ACTIONS = ("Directions", "Greeting", "Sitting 1", "Waiting", "Walking")
# (min_cutoff Hz, beta per px/s); None: no filter
SETTINGS = (None, (0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (0.5, 0.01), (1.0, 0.01), (1.0, 0.05))


def test_takes(frames: int, noise_px: float, seed: int) -> list[dict]:
    """One take per test subject and action seen by camera 0: clean and noisy pixels, and the
    root-relative 3D ground truth in the camera frame (metres)."""
    rng = np.random.default_rng(seed)
    takes = []
    for subject in H36M_TEST_SUBJECTS:
        camera = h36m_cameras(subject)[0]
        scale = rng.uniform(0.9, 1.1)
        for action in ACTIONS:
            world = animate(action, frames, scale, rng)
            in_camera = world_to_camera(world, camera.orientation, camera.translation)
            clean = project_to_pixels(in_camera, camera)
            takes.append(
                {
                    "name": f"{subject} {action}",
                    "clean": clean,
                    "noisy": clean + rng.normal(0.0, noise_px, clean.shape),
                    "truth": root_relative(in_camera, H36M_17.root),
                    "size": (camera.res_w, camera.res_h),
                }
            )
    return takes


def train_small_model(run_dir: Path, epochs: int, batches: int, threads: int) -> Path:
    """Train the CPU demo model (configs/model/small.yaml) briefly with train.py; its best
    validation checkpoint."""
    command = [
        sys.executable,
        "train.py",
        f"hydra.run.dir={run_dir}",
        "data.root=outputs/data/synthetic",
        f"epochs={epochs}",
        f"train.max_batches_per_epoch={batches}",
        "overwrite=true",
        # this benchmark tests on takes of its own; train.py's own test stays short
        "data.test_subjects=[S11]",
    ]
    print("training:", " ".join(command[1:]), flush=True)
    environment = os.environ | {"OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, cwd=PROJECT, check=True, env=environment)
    return run_dir / "checkpoints" / "best.pt"


def _label(setting) -> str:
    return "no filter" if setting is None else f"min_cutoff {setting[0]:g}, beta {setting[1]:g}"


def measure(takes: list[dict], model, flip_test: bool = True) -> tuple[list[dict], dict]:
    rows, lifted_examples = [], {}
    device = torch.device("cpu")
    for setting in SETTINGS:
        sums = {k: [] for k in ("v2", "p2", "v3", "p3", "j3", "w")}
        for take in takes:
            keypoints = take["noisy"]
            if setting is not None:
                keypoints = smooth_sequence(keypoints, FPS, *setting)
            width, height = take["size"]
            normalized = normalize_screen_coordinates(keypoints, width, height)
            with torch.no_grad():
                lifted = predict_sequence(model, normalized, H36M_17, device, flip_test)
            lifted = root_relative(lifted.astype(np.float64), H36M_17.root)
            frames = len(keypoints)
            sums["w"].append(frames)
            sums["v2"].append(mpjve(keypoints, take["clean"]))
            sums["p2"].append(np.linalg.norm(keypoints - take["clean"], axis=-1).mean())
            sums["v3"].append(1000 * mpjve(lifted, take["truth"]))
            sums["j3"].append(1000 * mpjve(lifted))
            sums["p3"].append(1000 * np.linalg.norm(lifted - take["truth"], axis=-1).mean())
            lifted_examples.setdefault(_label(setting), []).append(lifted)
        weights = np.asarray(sums.pop("w"), dtype=np.float64)
        row = {"filter": _label(setting)}
        if setting is not None:
            row |= {"min_cutoff": setting[0], "beta": setting[1]}
        for key, values in sums.items():
            row[key] = float(np.average(values, weights=weights))
        rows.append(row)
    clean_lifted = []
    for take in takes:
        normalized = normalize_screen_coordinates(take["clean"], *take["size"])
        with torch.no_grad():
            lifted = predict_sequence(model, normalized, H36M_17, device, flip_test)
        clean_lifted.append(root_relative(lifted.astype(np.float64), H36M_17.root))
    weights = np.array([len(t["clean"]) for t in takes], dtype=np.float64)
    rows.append(
        {
            "filter": "clean 2D (no noise), for reference",
            "v2": 0.0,
            "p2": 0.0,
            "v3": float(
                np.average(
                    [1000 * mpjve(p, t["truth"]) for p, t in zip(clean_lifted, takes, strict=True)],
                    weights=weights,
                )
            ),
            "j3": float(np.average([1000 * mpjve(p) for p in clean_lifted], weights=weights)),
            "p3": float(
                np.average(
                    [
                        1000 * np.linalg.norm(p - t["truth"], axis=-1).mean()
                        for p, t in zip(clean_lifted, takes, strict=True)
                    ],
                    weights=weights,
                )
            ),
        }
    )
    truth_jitter = float(np.average([1000 * mpjve(t["truth"]) for t in takes], weights=weights))
    return rows, {"lifted": lifted_examples, "truth_jitter_mm": truth_jitter}


def _bone_angles_deg(fk: np.ndarray, expected: np.ndarray, child: int, parent: int) -> np.ndarray:
    a, b = fk[:, child] - fk[:, parent], expected[:, child] - expected[:, parent]
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def bvh_fidelity(lifted: dict[str, list[np.ndarray]], folder: Path) -> list[dict]:
    """Median, 95th percentile and largest angle between each bone of the written BVH (forward
    kinematics) and the lifted bone, over every frame of every take: the six bones from the
    pelvis and thorax one by one, the other ten together; both girdle modes, two settings."""
    names = H36M_17.joint_names
    girdle_bones = [(c, p) for c, p in H36M_17.bones if p in (0, 8)]
    other_bones = [(c, p) for c, p in H36M_17.bones if p not in (0, 8)]
    rows = []
    for label in ("no filter", "min_cutoff 1, beta 0.01"):
        for girdle in GIRDLES:
            angles: dict[str, list[np.ndarray]] = {}
            for index, poses in enumerate(lifted[label]):
                path = write_bvh(folder / f"take{index}.bvh", poses, FPS, girdle=girdle)
                motion = read_bvh(path)
                fk = motion.positions()[:, [motion.joint_names.index(n) for n in names]]
                expected = poses @ CAMERA_TO_BVH.T
                for child, parent in girdle_bones:
                    angles.setdefault(f"{names[parent]} -> {names[child]}", []).append(
                        _bone_angles_deg(fk, expected, child, parent)
                    )
                angles.setdefault("the other 10 bones", []).extend(
                    _bone_angles_deg(fk, expected, c, p) for c, p in other_bones
                )
            for bone, values in angles.items():
                values = np.concatenate(values)
                rows.append(
                    {
                        "input": label,
                        "girdle": girdle,
                        "bone": bone,
                        "median_deg": float(np.median(values)),
                        "p95_deg": float(np.percentile(values, 95)),
                        "max_deg": float(values.max()),
                    }
                )
    return rows


COLUMNS = (
    Column("2D filter", "filter"),
    Column("2D MPJVE px", "v2", "{:.2f}"),
    Column("2D MPJPE to clean px", "p2", "{:.2f}"),
    Column("3D MPJVE mm", "v3", "{:.2f}"),
    Column("3D jitter mm/frame", "j3", "{:.2f}"),
    Column("3D MPJPE mm", "p3", "{:.1f}"),
)
BVH_COLUMNS = (
    Column("2D input", "input"),
    Column("girdle", "girdle"),
    Column("bone", "bone"),
    Column("median deg", "median_deg", "{:.3f}"),
    Column("95th pct deg", "p95_deg", "{:.3f}"),
    Column("max deg", "max_deg", "{:.3f}"),
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/bench_smoothing"))
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--train-dir", type=Path, default=Path("outputs/bench_smoothing/train"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batches", type=int, default=150, help="training batches per epoch")
    parser.add_argument("--frames", type=int, default=300, help="frames per test take")
    parser.add_argument("--noise-px", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (nothing here is timed; on a shared 2-core machine one thread "
        "ran this small model 15 times faster than two)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = command_line(argv)
    started = time.perf_counter()
    if args.checkpoint is None:
        checkpoint = train_small_model(
            args.train_dir.resolve(), args.epochs, args.batches, args.threads
        )
        model_note = (
            f"the CPU demo model (configs/model/small.yaml: 9 frames, 32 channels) trained by "
            f"train.py for {args.epochs} epochs of {args.batches} batches on the synthetic "
            "training subjects (best validation epoch)"
        )
    else:
        checkpoint = args.checkpoint
        model_note = f"the checkpoint {checkpoint}"
    model = load_lifter(checkpoint)
    takes = test_takes(args.frames, args.noise_px, args.seed)
    rows, extra = measure(takes, model)
    frames = sum(len(t["clean"]) for t in takes)
    notes = [
        f"{len(takes)} takes ({', '.join(ACTIONS)} of {', '.join(H36M_TEST_SUBJECTS)}; "
        f"{frames} frames at {FPS:g} frames/s, 1000x1002 px) from the synthetic generator, seen "
        f"by camera 0, with Gaussian noise of {args.noise_px:g} px on every 2D coordinate.  "
        "The One-Euro filter (glagcn.smoothing, causal) runs on the noisy 2D track, which is "
        f"then lifted by {model_note}, with test-time flip.",
        "MPJVE: mean per-joint velocity error against the clean track (2D, px/frame) or the "
        "3D ground truth (mm/frame, root-relative).  3D jitter: the mean per-joint movement "
        "per frame of the lifted poses (the ground truth moves "
        f"{extra['truth_jitter_mm']:.2f} mm/frame).  MPJPE: mean joint distance to the clean "
        "2D track or to the 3D ground truth (root-relative; lag shows here).  Frame-weighted "
        "means over the takes.",
    ]
    write_report(
        args.out / "smoothing",
        rows,
        COLUMNS,
        "One-Euro smoothing of noisy 2D keypoints, before and after lifting",
        command,
        notes=notes,
        extra={
            "noise_px": args.noise_px,
            "frames": frames,
            "model": model_note,
            "ground_truth_3d_jitter_mm_per_frame": extra["truth_jitter_mm"],
            "seconds": time.perf_counter() - started,
        },
    )
    with tempfile.TemporaryDirectory() as folder:
        bvh_rows = bvh_fidelity(extra["lifted"], Path(folder))
    write_report(
        args.out / "bvh_fidelity",
        bvh_rows,
        BVH_COLUMNS,
        "BVH export of lifted poses: each bone's direction after forward kinematics",
        command,
        notes=[
            "The same lifted takes written by glagcn.bvh.write_bvh and read back with "
            "glagcn.bvh.read_bvh: the angle between each bone as the file's forward kinematics "
            "places it and the lifted bone, over every frame.  girdle=rigid (the default, the 17 "
            "joints): the pelvis and thorax are rigid, so their three bones each get the "
            "rotation that fits all three best and keep the lifted torso's frame-to-frame "
            "change of shape as error; the other bones are exact.  girdle=exact: a zero-length "
            "helper joint per pelvis/thorax bone (23 joints) makes every bone exact.",
        ],
    )
    print((args.out / "smoothing.md").read_text())
    print((args.out / "bvh_fidelity.md").read_text())


if __name__ == "__main__":
    main()
