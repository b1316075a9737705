"""``predict.py``: keypoint file in, 3D poses (npz + JSON) and optional renders out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from glagcn.keypoints_io import load_keypoints, to_h36m_sequence
from glagcn.lift import lift_sequence
from glagcn.render import render_frames_png, render_sequence
from glagcn.skeleton import H36M_17


def predict(cfg: DictConfig) -> dict:
    out = Path(str(cfg.output))
    out.mkdir(parents=True, exist_ok=True)
    sequence = load_keypoints(cfg.input, cfg.get("layout"))
    image_size = (int(cfg.image_width), int(cfg.image_height))
    poses = lift_sequence(sequence, image_size, cfg.checkpoint, cfg.score_threshold,
                          cfg.max_missing_fraction, cfg.flip_test, cfg.device)
    np.savez(out / "poses_3d.npz", poses_3d=poses, frame_indices=sequence.frame_indices,
             layout="h36m17", joint_names=np.array(H36M_17.joint_names))
    (out / "poses_3d.json").write_text(json.dumps({
        "layout": "h36m17", "joint_names": list(H36M_17.joint_names), "units": "metres",
        "coordinates": "camera frame (x right, y down, z forward), root-relative",
        "frames": [{"frame_index": int(f), "joints": p.round(5).tolist()}
                   for f, p in zip(sequence.frame_indices, poses, strict=True)],
    }))
    written = {"poses_3d": str(out / "poses_3d.npz")}
    if cfg.render:
        pixels, _ = to_h36m_sequence(sequence, cfg.score_threshold, cfg.max_missing_fraction)
        video = out / f"lift.{cfg.render_format}"
        render_sequence(pixels, poses, H36M_17, video, fps=cfg.fps, image_size=image_size,
                        frame_indices=sequence.frame_indices, video_path=cfg.get("video"))
        render_frames_png(pixels, poses, H36M_17, out / "lift_frames.png", image_size=image_size)
        written.update(video=str(video), frames_png=str(out / "lift_frames.png"))
    print(f"lifted {len(poses)} frames -> {out}")
    return written
