import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from glagcn.data.synthesize import synthesize
from glagcn.keypoints import KeypointInputError
from glagcn.lift import lift
from glagcn.model import build_model
from glagcn.skeleton import HUMANEVA_15
from trilab.checkpoint import save_checkpoint

PROJECT = Path(__file__).resolve().parents[1]


def test_lift_returns_one_root_relative_pose_per_frame(tiny_lifter_checkpoint):
    keypoints = np.random.default_rng(0).uniform(300, 700, size=(5, 17, 2))  # shorter than RF 9
    poses = lift(keypoints, (1000, 1000), tiny_lifter_checkpoint)
    assert poses.shape == (5, 17, 3) and np.isfinite(poses).all()
    assert np.abs(poses[:, 0]).max() == 0.0
    with pytest.raises(KeypointInputError, match="image width 0 is not a size in pixels"):
        lift(keypoints, (0, 1000), tiny_lifter_checkpoint)


def test_predict_py_on_a_generated_coco_json(tmp_path, tiny_lifter_checkpoint):
    synthesize(
        tmp_path / "synthetic",
        frames=30,
        subjects=("S9",),
        actions=("Walking 1",),
        vary_lengths=False,
    )
    keypoints = tmp_path / "synthetic" / "demo_keypoints.json"
    entries = json.loads(keypoints.read_text())
    assert len(entries) == 30 and len(entries[0]["keypoints"]) == 51
    out = tmp_path / "lifted"
    subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"input={keypoints}",
            f"checkpoint={tiny_lifter_checkpoint}",
            f"output={out}",
            "image_width=1000",
            "image_height=1002",
            "render=true",
        ],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    result = np.load(out / "poses_3d.npz")
    assert result["poses_3d"].shape == (30, 17, 3)
    np.testing.assert_array_equal(result["frame_indices"], np.arange(30))
    payload = json.loads((out / "poses_3d.json").read_text())
    assert payload["layout"] == "h36m17" and len(payload["frames"]) == 30
    assert (out / "lift.mp4").stat().st_size > 0 and (out / "lift_frames.png").is_file()


def test_checkpoint_of_another_skeleton_is_refused(tmp_path, tiny_lifter_config):
    path = tmp_path / "he.pt"
    save_checkpoint(
        path,
        model=build_model(tiny_lifter_config, HUMANEVA_15),
        epoch=0,
        extra={"model_config": tiny_lifter_config, "skeleton": "humaneva15"},
    )
    with pytest.raises(ValueError, match="humaneva15 skeleton"):
        lift(np.zeros((4, 17, 2)) + 500, (1000, 1000), path)


def test_config_of_predict_is_complete():
    config = OmegaConf.load(PROJECT / "configs" / "predict.yaml")
    assert {"input", "checkpoint", "output", "image_width", "render"} <= set(config)
