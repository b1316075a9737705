"""The authors' HumanEva-I model for detected 2D (``s_agcn_HE_13.py``) converts and computes as
theirs: COCO-17 mapped to 15 joints inside the model, no input BatchNorm, the 12-pair graph.

The oracle is ``glagcn.model.authors_reference`` (their forward re-stated on their state dict)
and, for the scores, a re-statement of ``run_s-agcn_HE_13.py``'s evaluation below.  Everything
runs in float64, where equal computations agree to ~1e-12 whatever kernels the CPU picks.
"""

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glagcn.convert_checkpoint import ConversionError, convert_file, main
from glagcn.data.humaneva import load_humaneva
from glagcn.evaluate import check_input_joints, evaluate
from glagcn.evaluation import evaluate_model
from glagcn.model import build_model, model_from_checkpoint
from glagcn.model.authors_reference import (
    HE13_PAIRS,
    S_AGCN_HUMANEVA_PAIRS,
    authors_adjacency,
    authors_forward,
    random_authors_state_dict,
)
from glagcn.model.inputs import COCO17_LEFT, COCO17_RIGHT, coco17_to_humaneva15
from glagcn.skeleton import HUMANEVA_15
from trilab.errors import UserError
from trilab.testing import compose_config, exit_of_entry_point

WIDTHS = (3, 3, 3)
CHANNELS = 8


def _plain64(theirs: dict) -> dict:
    return {
        key.removeprefix("module."): value.double() if value.is_floating_point() else value
        for key, value in theirs.items()
    }


def _converted_he13(folder, widths):
    """Random weights in their HE_13 checkpoint layout (data_bn of 30 values included, as
    their module has one), converted with --authors-model he13."""
    theirs = random_authors_state_dict(CHANNELS, widths, num_joints=15, seed=3)
    source = folder / "96_detectron_pt_coco_27_supervised_epoch_990.bin"
    torch.save({"epoch": 990, "lr": 1e-5, "model_pos": theirs}, source)
    target = convert_file(source, folder / "he13.pt", "humaneva15", authors_model="he13")
    model, extra = model_from_checkpoint(target, torch.device("cpu"))
    return source, theirs, model.double(), extra


@pytest.fixture(scope="module")
def he13(tmp_path_factory):
    return _converted_he13(tmp_path_factory.mktemp("he13"), WIDTHS)


def test_he13_model_computes_what_theirs_computes(he13):
    source, theirs, model, extra = he13
    assert extra["authors_model"] == "he13"
    assert extra["model_config"]["input_layout"] == "coco17"
    assert extra["model_config"]["input_bn"] is False
    assert extra["model_config"]["graph"] == "he13"
    assert model.input_bn is None and model.num_input_joints == 17 and model.num_joints == 15
    window = torch.randn(4, 27, 17, 2, generator=torch.Generator().manual_seed(1)).double()
    params = _plain64(theirs)
    with torch.no_grad():
        expected = authors_forward(
            window, params, WIDTHS, authors_adjacency(HE13_PAIRS, 15), model="he13"
        )
        ours = model(window)
        assert ours.shape == (4, 1, 15, 3)
        assert (ours - expected).abs().max() < 1e-10
        # each of the three differences matters: the main model's graph, or BN applied, is off
        main_graph = authors_forward(
            window, params, WIDTHS, authors_adjacency(S_AGCN_HUMANEVA_PAIRS, 15), model="he13"
        )
        assert (main_graph - expected).abs().max() > 1e-3
        mapped = coco17_to_humaneva15(window)
        with_bn = authors_forward(
            mapped, params, WIDTHS, authors_adjacency(HE13_PAIRS, 15), model="s_agcn"
        )
        assert (with_bn - expected).abs().max() > 1e-3


def test_the_coco_mapping_is_their_loops():
    from glagcn.model.authors_reference import he13_coco_to_15

    x = torch.randn(2, 5, 17, 2, dtype=torch.float64)
    theirs = he13_coco_to_15(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # N, 17, 2, T form
    torch.testing.assert_close(coco17_to_humaneva15(x), theirs, rtol=0, atol=0)


def test_the_converter_says_which_model_it_built_and_refuses_a_wrong_skeleton(he13, tmp_path):
    source = he13[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main([str(source), str(tmp_path / "a.pt"), "--skeleton", "humaneva15"])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("built the authors' s_agcn model, common/s_agcn.py")
    assert lines[0].endswith("needs --authors-model he13)")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main([str(source), str(tmp_path / "b.pt"), "--skeleton=humaneva15", "--authors-model=he13"])
    assert out.getvalue().startswith("built the authors' he13 model, common/s_agcn_HE_13.py")
    status, stderr = exit_of_entry_point(
        lambda: convert_file(source, tmp_path / "c.pt", "h36m17", authors_model="he13"),
        "glagcn.convert_checkpoint",
    )
    assert status == 2 and "defined for --skeleton humaneva15, not h36m17" in stderr
    assert not (tmp_path / "c.pt").exists()
    with pytest.raises(ConversionError, match="not one of their model files"):
        convert_file(source, tmp_path / "d.pt", "humaneva15", authors_model="he14")


# ---- their evaluation script, re-stated, on a synthetic HumanEva-I set with COCO-17 2D -----

# short takes (some shorter than a window: edge-padded at both ends), as float64 is slow on a CPU
TAKES = {"Walking 1 chunk0": 10, "Walking 1 chunk2": 5, "Jog 1 chunk0": 8, "Box 1 chunk0": 7}
SUBJECTS = ("Validate/S1", "Validate/S2", "Validate/S3")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KPS_SYMMETRY = [list(COCO17_LEFT), list(COCO17_RIGHT)]


def _write_detected_humaneva(folder, rng):
    """VideoPose3D's layout: 3D world poses per take; per take a list of 3 camera arrays of
    COCO-17 Mask R-CNN pixels, some a few frames longer than the mocap; 'coco' metadata."""
    positions_3d, positions_2d = {}, {}
    for subject in ("Train/S1", "Train/S2", "Train/S3", *SUBJECTS):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for take, frames in TAKES.items():
            drift = np.cumsum(rng.normal(0, 0.01, (frames, 1, 3)), axis=0)
            world = rng.normal(0, 0.3, (1, 15, 3)) + drift + np.array([0.0, 0.0, 1.0])
            positions_3d[subject][take] = world.astype(np.float32)
            positions_2d[subject][take] = [
                (
                    np.array([320.0, 240.0])
                    + rng.normal(0, 60, (1, 17, 2))
                    + np.cumsum(rng.normal(0, 2, (frames + extra, 17, 2)), axis=0)
                ).astype(np.float32)
                for extra in (0, 2, 4)
            ]
    np.savez_compressed(folder / "data_3d_humaneva15.npz", positions_3d=positions_3d)
    np.savez_compressed(
        folder / "data_2d_humaneva15_detectron_pt_coco.npz",
        positions_2d=positions_2d,
        metadata={"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": KPS_SYMMETRY},
    )
    return positions_2d


def _their_p_mpjpe(predicted, target):
    """common/loss.py p_mpjpe, per frame, averaged."""
    mu_x, mu_y = target.mean(1, keepdims=True), predicted.mean(1, keepdims=True)
    x0, y0 = target - mu_x, predicted - mu_y
    norm_x = np.sqrt((x0**2).sum(axis=(1, 2), keepdims=True))
    norm_y = np.sqrt((y0**2).sum(axis=(1, 2), keepdims=True))
    x0, y0 = x0 / norm_x, y0 / norm_y
    u, s, vt = np.linalg.svd(np.matmul(x0.transpose(0, 2, 1), y0))
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    sign = np.sign(np.expand_dims(np.linalg.det(r), axis=1))
    v[:, :, -1] *= sign
    s[:, -1] *= sign.flatten()
    r = np.matmul(v, u.transpose(0, 2, 1))
    a = np.expand_dims(s.sum(axis=1, keepdims=True), axis=2) * norm_x / norm_y
    t = mu_x - a * np.matmul(mu_y, r)
    return np.linalg.norm(a * np.matmul(predicted, r) + t - target, axis=-1).mean()


def _their_action_errors(raw_2d, sequences, params, widths):
    """run_s-agcn_HE_13.py --evaluate: per action (takes grouped by their first word), the
    Evaluate_Generator's edge-padded window per frame and its mirror (x negated, COCO left and
    right swapped), the two predictions averaged (3D mirrored back with the skeleton's left and
    right), the target's root zeroed, MPJPE and P-MPJPE weighted by frames, in mm."""
    pad = (int(np.prod(widths)) - 1) // 2
    adjacency = authors_adjacency(HE13_PAIRS, 15)
    left, right = list(HUMANEVA_15.joints_left), list(HUMANEVA_15.joints_right)
    kps_left, kps_right = KPS_SYMMETRY
    loaded = {(s.subject, s.action, s.camera): s for s in sequences}
    sums = {}
    for subject in SUBJECTS:
        for take in TAKES:
            for camera, pixels in enumerate(raw_2d[subject][take]):
                sequence = loaded[(subject, take, camera)]
                target = sequence.poses_3d.astype(np.float64)
                # their normalize_screen_coordinates runs in float64 and is written back into
                # the float32 array; ours runs in float32: the two differ by at most one float32
                # rounding, so the model gets ours (the proof is of the model and the scoring)
                keypoints = pixels[: len(target)] / 640 * 2 - [1, 480 / 640]
                keypoints = keypoints.astype(np.float32)
                np.testing.assert_allclose(sequence.keypoints_2d, keypoints, rtol=0, atol=2.5e-7)
                keypoints = sequence.keypoints_2d.astype(np.float64)
                padded = np.pad(keypoints, ((pad, pad), (0, 0), (0, 0)), "edge")
                windows = np.stack([padded[t : t + 2 * pad + 1] for t in range(len(target))])
                flipped = windows.copy()
                flipped[..., 0] *= -1
                flipped[:, :, kps_left + kps_right] = flipped[:, :, kps_right + kps_left]
                with torch.no_grad():
                    predicted = authors_forward(
                        torch.from_numpy(windows), params, widths, adjacency, model="he13"
                    ).numpy()
                    mirrored = authors_forward(
                        torch.from_numpy(flipped), params, widths, adjacency, model="he13"
                    ).numpy()
                mirrored[..., 0] *= -1
                mirrored[:, :, left + right] = mirrored[:, :, right + left]
                predicted = np.concatenate([predicted, mirrored], axis=1).mean(1)
                target[:, 0] = 0
                action = take.split(" ")[0]
                e1 = np.linalg.norm(predicted - target, axis=-1).mean()
                e2 = _their_p_mpjpe(predicted, target)
                frames, total1, total2 = sums.get(action, (0, 0.0, 0.0))
                n = len(target)
                sums[action] = (frames + n, total1 + n * e1, total2 + n * e2)
    return {a: (t1 / n * 1000, t2 / n * 1000) for a, (n, t1, t2) in sums.items()}


def test_evaluation_equals_their_scripts_per_action_numbers(tmp_path):
    # a 9-frame model: the windows, flips and scoring are what is proven here, and float64
    # convolutions are slow on a CPU
    _, theirs, model, _ = _converted_he13(tmp_path, (3, 3))
    raw_2d = _write_detected_humaneva(tmp_path, np.random.default_rng(0))
    sequences = load_humaneva(
        tmp_path / "data_3d_humaneva15.npz",
        tmp_path / "data_2d_humaneva15_detectron_pt_coco.npz",
        SUBJECTS,
        ["Walk", "Jog", "Box"],
    )
    assert sequences[0].keypoints_2d.shape[1:] == (17, 2)
    check_input_joints(model, sequences, "he13.pt", {"keypoints": "detectron_pt_coco"})
    ours = evaluate_model(copy.deepcopy(model), sequences, HUMANEVA_15, torch.device("cpu"))
    expected = _their_action_errors(raw_2d, sequences, _plain64(theirs), (3, 3))
    assert set(ours["per_action"]) == set(expected) == {"Walking", "Jog", "Box"}
    for action, (mpjpe_mm, p_mpjpe_mm) in expected.items():
        assert ours["per_action"][action]["mpjpe_mm"] == pytest.approx(mpjpe_mm, abs=1e-6)
        assert ours["per_action"][action]["p_mpjpe_mm"] == pytest.approx(p_mpjpe_mm, abs=1e-6)
    assert ours["mpjpe_mm"] == pytest.approx(np.mean([e[0] for e in expected.values()]), abs=1e-6)


def test_ground_truth_2d_for_a_coco_model_is_one_clear_error(he13):
    model = he13[2]
    gt = [type("S", (), {"keypoints_2d": np.zeros((5, 15, 2))})()]
    with pytest.raises(UserError, match=r"takes 17 2D joints \(model.input_layout=coco17\)"):
        check_input_joints(model, gt, "he13.pt", {"keypoints": "gt"})


def _experiment(*overrides):
    return compose_config(CONFIGS, ["+experiment=humaneva_detectron_27", *overrides])


def test_the_detected_2d_experiment_builds_and_evaluates_the_he13_model(
    he13, tmp_path, monkeypatch
):
    source, _, converted_model, _ = he13
    cfg = _experiment(f"data.root={tmp_path}")
    assert cfg.data.keypoints == "detectron_pt_coco"
    built = build_model(cfg.model, HUMANEVA_15)  # what training builds: the converted layout
    assert built.num_input_joints == 17 and built.input_bn is None and built.graph == "he13"
    assert built.state_dict().keys() == converted_model.state_dict().keys()
    _write_detected_humaneva(tmp_path, np.random.default_rng(1))
    monkeypatch.chdir(tmp_path)
    converted = convert_file(source, tmp_path / "he13.pt", "humaneva15", authors_model="he13")
    metrics = evaluate(
        _experiment(
            f"data.root={tmp_path}",
            "device=cpu",
            f"checkpoint={converted}",
            "data.test_subjects=[Validate/S1]",
        )
    )
    assert set(metrics["per_action"]) == {"Walking", "Jog", "Box"}
    assert json.loads((tmp_path / "metrics.json").read_text())["mpjpe_mm"] == metrics["mpjpe_mm"]


def test_training_windows_mirror_coco_keypoints_with_cocos_left_and_right(he13):
    from glagcn.data.batching import WindowedPoses
    from glagcn.data.sequences import PoseSequence

    model = he13[2]
    rng = np.random.default_rng(0)
    keypoints = rng.normal(size=(5, 17, 2)).astype(np.float32)
    poses = rng.normal(size=(5, 15, 3)).astype(np.float32)
    table = WindowedPoses(
        [PoseSequence("Train/S1", "Walking 1", 0, keypoints, poses)],
        9,
        HUMANEVA_15,
        full_sequence_3d=False,
        keypoint_flip=model.input_flip_permutation,
    )
    windows, targets = table.batch([2], flip=[True])
    expected = keypoints[2][[0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]] * [-1, 1]
    np.testing.assert_array_equal(windows[0, 4].numpy(), expected)  # the window's centre
    mirrored_target = poses[2][list(HUMANEVA_15.flip_permutation())] * [-1, 1, 1]
    np.testing.assert_array_equal(targets[0, 0].numpy(), mirrored_target)


def test_the_detected_2d_experiment_trains_a_causal_he13_model(tmp_path, monkeypatch):
    from glagcn.training import train

    _write_detected_humaneva(tmp_path, np.random.default_rng(2))
    monkeypatch.chdir(tmp_path)
    small = ["model.channels=8", "model.filter_widths=[3,3]", "model.temporal_kernel=3"]
    metrics = train(
        _experiment(
            f"data.root={tmp_path}",
            "device=cpu",
            "epochs=1",
            "batch_size=16",
            "train.max_batches_per_epoch=2",
            "model.causal=true",
            "data.test_subjects=[Validate/S1]",
            *small,
        )
    )
    assert set(metrics["per_action"]) == {"Walking", "Jog", "Box"}
    model, extra = model_from_checkpoint(tmp_path / "checkpoints" / "last.pt", torch.device("cpu"))
    assert extra["model_config"]["causal"] and extra["model_config"]["input_layout"] == "coco17"
    assert model.causal and model.num_input_joints == 17


def test_training_a_15_joint_model_on_coco_detections_is_one_clear_error(tmp_path, monkeypatch):
    from glagcn.training import train

    _write_detected_humaneva(tmp_path, np.random.default_rng(3))
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(
        CONFIGS,
        [
            "+experiment=humaneva_gt_27",
            f"data.root={tmp_path}",
            "data.keypoints=detectron_pt_coco",
            "device=cpu",
        ],
    )
    status, stderr = exit_of_entry_point(lambda: train(cfg), "train.py")
    assert status == 2
    assert "the model takes 15 2D joints (model.input_layout=skeleton)" in stderr
    assert "data.keypoints=detectron_pt_coco has 17" in stderr
