"""A run stopped mid-epoch resumes to the uninterrupted result (one process and two under
torchrun; the loop's other mechanics are tested on a toy in shared/tests); crafted dataset files
run no code; user errors print one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glagcn.data.synthesize import synthesize
from glagcn.training import train
from trilab.errors import RunStopped
from trilab.run_folder import RunFolderError
from trilab.safe_load import UnsafeFileError
from trilab.stopping import StopSignal
from trilab.testing import (
    compose_config,
    exit_of_entry_point,
    run_to_completion,
    signal_once_logged,
    torchrun_command,
    user_error_of,
    write_crafted_npz,
    write_crafted_torch_file,
)

PROJECT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT / "configs"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(
        root, seed=2, frames=40, noise_px=2.0, subjects=("S1", "S8", "S9"), actions=("Walking 1",)
    )
    return root


def _overrides(root, *extra):
    return [
        f"data.root={root}",
        "data.train_subjects=[S1]",
        "data.val_subjects=[S8]",
        "data.test_subjects=[S9]",
        "data.actions=[Walking]",
        "model.channels=8",
        "model.receptive_field=9",
        "model.temporal_kernel=3",
        "batch_size=8",
        "train.max_batches_per_epoch=5",
        "device=cpu",
        *extra,
    ]


def _compose(overrides):
    return compose_config(CONFIGS, overrides)


def _final_state(run: Path) -> tuple[dict, dict]:
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    metrics = json.loads((run / "metrics.json").read_text())
    return payload["model"], {k: metrics[k] for k in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm")}


def _assert_same(a: tuple[dict, dict], b: tuple[dict, dict]) -> None:
    weights_a, metrics_a = a
    weights_b, metrics_b = b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    assert metrics_a == metrics_b


def test_stop_in_the_middle_of_an_epoch_resumes_to_the_uninterrupted_result(
    synthetic, tmp_path, monkeypatch
):
    reference = tmp_path / "reference"
    reference.mkdir()
    monkeypatch.chdir(reference)
    train(_compose(_overrides(synthetic, "epochs=3")))

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    monkeypatch.chdir(stopped)
    calls = {"n": 0}

    def signal_during_epoch_1(self, step, force=False):
        calls["n"] += 1
        if calls["n"] == 8:  # epoch 0 has 5 steps (+1 boundary check): step 2 of epoch 1
            self.signum = signal.SIGTERM
        return self.signum is not None

    monkeypatch.setattr(StopSignal, "requested", signal_during_epoch_1)
    with pytest.raises(RunStopped) as info:
        train(_compose(_overrides(synthetic, "epochs=3")))
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert "in epoch 1 after step 2" in str(info.value)
    payload = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert (payload["epoch"], payload["steps_into_next_epoch"]) == (0, 2)
    assert "stopped in epoch 1 after step 2" in (stopped / "run.log").read_text()
    monkeypatch.undo()
    monkeypatch.chdir(stopped)
    train(_compose(_overrides(synthetic, "epochs=3", "resume=true")))
    _assert_same(_final_state(reference), _final_state(stopped))
    steps = [json.loads(line)["step"] for line in (stopped / "scalars.jsonl").open()]
    assert steps == [0, 1, 2]
    with pytest.raises(RunFolderError, match="resume=true, or replace it with overwrite=true"):
        train(_compose(_overrides(synthetic, "epochs=3")))


def test_crafted_dataset_file_runs_no_code(synthetic, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    marker = tmp_path / "marker"
    write_crafted_npz(root / "data_3d_h36m.npz", marker, "positions_3d")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeFileError, match="data_3d_h36m.npz"):
        train(_compose(_overrides(root, "epochs=1")))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("script", "overrides", "expected"),
    [
        ("train.py", ["data=h36m", "data.root={tmp}/missing"], "missing"),
        ("evaluate.py", ["checkpoint={tmp}/none.pt"], "none.pt"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, script, overrides, expected):
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    command = [sys.executable, script, *overrides, "device=cpu", f"hydra.run.dir={tmp_path}/run"]
    assert expected in user_error_of(command, PROJECT)


def test_a_missing_configuration_value_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, stderr = exit_of_entry_point(
        lambda: train(_compose(["data=h36m", "device=cpu"])), "train.py"
    )
    assert status == 2 and "data.root" in stderr and len(stderr.strip().splitlines()) == 1


def test_crafted_checkpoint_runs_no_code_in_evaluate_or_resume(synthetic, tmp_path, monkeypatch):
    from glagcn.evaluate import evaluate

    marker = tmp_path / "marker"
    crafted = write_crafted_torch_file(tmp_path / "checkpoints" / "last.pt", marker)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeFileError, match="last.pt"):
        evaluate(_compose(_overrides(synthetic, f"checkpoint={crafted}")))
    with pytest.raises(UnsafeFileError, match="last.pt"):
        train(_compose(_overrides(synthetic, "epochs=1", "resume=true")))
    assert not marker.exists()


def _subprocess_command(synthetic) -> tuple[list[str], dict]:
    common = _overrides(synthetic, "epochs=4", "train.max_batches_per_epoch=30")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [sys.executable, "train.py", *common], env


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_at_one_step_and_resume_matches(
    synthetic, tmp_path
):
    """A scheduler's SIGTERM reaches torchrun, which passes it to both workers at slightly
    different moments: the ranks agree on one step, rank 0 alone writes the checkpoint, and
    the resumed two-process run ends with the uninterrupted two-process run's result."""
    command, env = _subprocess_command(synthetic)
    train_args = command[1:]  # without the interpreter: torchrun runs train.py itself
    reference = tmp_path / "reference"
    run_to_completion(torchrun_command(*train_args, f"hydra.run.dir={reference}"), PROJECT, env=env)

    run = tmp_path / "run"
    process = subprocess.Popen(
        torchrun_command(*train_args, f"hydra.run.dir={run}"),
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    signal_once_logged(process, run / "run.log", "epoch 0:", timeout=300)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    # one message per rank (the two may share a line of the common stderr), the same place:
    # an epoch boundary or the same step
    stops = re.findall(r"train\.py: stopped by SIGTERM ([^;]*);", stderr)
    assert len(stops) == 2, stderr[-3000:]
    where = set(stops)
    assert len(where) == 1, stops
    log = (run / "run.log").read_text()
    assert log.count("stopped ") == 1  # rank 0 logs; rank 1 only raises
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    position = where.pop()
    if position.startswith("in epoch"):
        steps = int(position.rsplit(" ", 1)[1])
        assert payload["steps_into_next_epoch"] == steps and steps % 10 == 0
    run_to_completion(
        torchrun_command(*train_args, f"hydra.run.dir={run}", "resume=true"), PROJECT, env=env
    )
    _assert_same(_final_state(reference), _final_state(run))
