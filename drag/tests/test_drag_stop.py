"""A run stopped mid-stage resumes to the uninterrupted result (the loop's other mechanics are
tested on a toy in shared/tests); a stage that ran is not silently replaced; user errors print
one line."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from drag.training import train
from trilab.checkpoint import CheckpointError
from trilab.errors import RunStopped
from trilab.run_folder import RunFolderError
from trilab.stopping import StopSignal
from trilab.testing import (
    exit_of_entry_point,
    user_error_of,
)

PROJECT = Path(__file__).resolve().parents[1]


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_stop_mid_epoch_then_resume_equals_the_uninterrupted_run(
    tiny_synthetic, trained_run, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    seen = {"step 2": 0}

    def signal_at_step_2_of_epoch_1(self, step, force=False):
        if step == 2 and not force:
            seen["step 2"] += 1
            if seen["step 2"] == 2:  # the finetune stage's second epoch
                self.signum = signal.SIGTERM
        return self.signum is not None

    monkeypatch.setattr(StopSignal, "requested", signal_at_step_2_of_epoch_1)
    with pytest.raises(RunStopped, match="finetune_backbone, epoch 1 after step 2") as info:
        train(compose_cfg(tiny_overrides(tiny_synthetic)))
    assert info.value.exit_code == 143
    saved = torch.load(
        tmp_path / "finetune_backbone" / "checkpoints" / "last.pt", weights_only=True
    )
    assert (saved["epoch"], saved["steps_into_next_epoch"]) == (0, 2)
    assert "stopped in stage finetune_backbone" in (tmp_path / "run.log").read_text()

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    resumed = train(compose_cfg(tiny_overrides(tiny_synthetic) + ["resume=true"]))
    reference = json.loads((trained_run / "metrics.json").read_text())
    for key in ("baseline", "drag"):
        assert resumed[key]["test"] == reference[key]["test"], key
    for stage in ("finetune_backbone", "drag"):
        ours = _weights(tmp_path / stage / "checkpoints" / "best.pt")
        theirs = _weights(trained_run / stage / "checkpoints" / "best.pt")
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), stage


def _stop_at(monkeypatch, step: int, occurrence: int) -> None:
    """SIGTERM after ``step`` of the epoch in which that step is reached the ``occurrence``-th
    time (a real signal's effect, at a chosen place)."""
    seen = {"count": 0}

    def requested(self, at, force=False):
        if at == step and not force:
            seen["count"] += 1
            if seen["count"] == occurrence:
                self.signum = signal.SIGTERM
        return self.signum is not None

    monkeypatch.setattr(StopSignal, "requested", requested)


def _drag_stage_overrides(tiny_synthetic, trained_run, tiny_overrides, weights: float) -> list:
    """The drag stage alone, from the trained run's CGL, with the MA-CNN losses at ``weights``."""
    cgl = trained_run / "pretrain_cgl" / "checkpoints" / "best.pt"
    return tiny_overrides(tiny_synthetic) + [
        "stages=[drag]",
        f"paths.cgl={cgl}",
        f"drag.distance_weight={weights}",
        f"drag.diversity_weight={weights}",
    ]


def _assert_same_tensors(ours, theirs, where: str = "") -> None:
    """Nested state (weights, optimizer states) equal bit for bit."""
    if isinstance(theirs, torch.Tensor):
        assert torch.equal(ours, theirs), where
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            _assert_same_tensors(ours[key], theirs[key], f"{where}/{key}")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_same_tensors(a, b, f"{where}/{i}")
    else:
        assert ours == theirs, where


def test_drag_stage_with_region_losses_resumes_to_the_uninterrupted_run(
    tiny_synthetic, trained_run, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    """The MA-CNN step's own CGL optimizer (Adam moments, step count) is in last.pt: a stop
    inside an epoch with the region losses on continues as if it had not stopped."""
    overrides = _drag_stage_overrides(tiny_synthetic, trained_run, tiny_overrides, 0.1)
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    for folder in (uninterrupted, interrupted):
        folder.mkdir()
    monkeypatch.chdir(uninterrupted)
    reference = train(compose_cfg(overrides))

    monkeypatch.chdir(interrupted)
    with monkeypatch.context() as patch:
        _stop_at(patch, step=1, occurrence=2)  # epoch 1, the backbone unfrozen
        with pytest.raises(RunStopped, match="drag, epoch 1 after step 1"):
            train(compose_cfg(overrides))
    resumed = train(compose_cfg(overrides + ["resume=true"]))

    assert resumed["drag"]["test"] == reference["drag"]["test"]
    for name in ("best.pt", "last.pt"):
        ours = torch.load(interrupted / "drag" / "checkpoints" / name, weights_only=True)
        theirs = torch.load(uninterrupted / "drag" / "checkpoints" / name, weights_only=True)
        _assert_same_tensors(ours["model"], theirs["model"], name)
        _assert_same_tensors(ours["state"], theirs["state"], name)
        if name == "last.pt":  # the region step's optimizer beside the stage's
            assert set(ours["state"]) == {"optimizer", "region_losses"}


def test_resuming_with_region_losses_from_a_checkpoint_without_their_optimizer_is_refused(
    tiny_synthetic, trained_run, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    """A last.pt written with the region losses off holds no state for their optimizer:
    turning them on at resume would start it afresh, so the run is refused."""
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:
        _stop_at(patch, step=1, occurrence=1)
        with pytest.raises(RunStopped):
            train(
                compose_cfg(_drag_stage_overrides(tiny_synthetic, trained_run, tiny_overrides, 0.0))
            )
    last = tmp_path / "drag" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    on = _drag_stage_overrides(tiny_synthetic, trained_run, tiny_overrides, 0.1)
    with pytest.raises(
        CheckpointError,
        match=r"last\.pt holds no state for region_losses \(Adam\(lr=",
    ):
        train(compose_cfg(on + ["resume=true"]))
    assert last.read_bytes() == before


def test_a_stage_that_ran_is_refused_without_resume_or_overwrite(
    tiny_synthetic, trained_run, compose_cfg, tiny_overrides, monkeypatch
):
    monkeypatch.chdir(trained_run)
    last = trained_run / "pretrain_cgl" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    with pytest.raises(RunFolderError, match="pretrain_cgl/checkpoints/last.pt.*overwrite=true"):
        train(compose_cfg(tiny_overrides(tiny_synthetic) + ["stages=[cluster,pretrain_cgl]"]))
    assert last.read_bytes() == before


@pytest.mark.parametrize(
    ("script", "overrides", "expected"),
    [
        ("predict.py", ["images={images}", "checkpoint={tmp}/none.pt"], "none.pt"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tiny_synthetic, tmp_path, script, overrides, expected
):
    overrides = [o.format(tmp=tmp_path, images=tiny_synthetic / "images") for o in overrides]
    command = [sys.executable, script, *overrides, "device=cpu", f"hydra.run.dir={tmp_path}/run"]
    quiet = {**os.environ, "PYTHONWARNINGS": "ignore"}
    assert expected in user_error_of(command, PROJECT, env=quiet)


def test_an_unknown_stage_or_data_format_is_one_line_naming_it(
    tiny_synthetic, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for wrong, named in (("stages=[nonsense]", "nonsense"), ("data.format=bogus", "bogus")):
        cfg = compose_cfg([*tiny_overrides(tiny_synthetic), wrong])
        status, stderr = exit_of_entry_point(lambda cfg=cfg: train(cfg), "train.py")
        last = stderr.strip().splitlines()[-1]  # after the run's first log line, if it began
        assert status == 2 and last.startswith("train.py: error: ") and named in last
