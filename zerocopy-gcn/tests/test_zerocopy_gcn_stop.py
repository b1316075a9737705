"""A stopped and resumed run ends with the uninterrupted run's weights (alone and under
torchrun), with prefetch on and off; zerocopy's input errors print one line.  What the loop does
the same way for every project (NaN losses, real signals, resuming nothing) is tested in
shared/tests/test_trilab_loop.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import zerocopy_gcn.training as training
from trilab.errors import RunStopped
from trilab.stopping import StopSignal
from trilab.testing import (
    compose_config,
    exit_of_entry_point,
    run_to_completion,
    signal_once_logged,
    torchrun_command,
    user_error_of,
    write_crafted_torch_file,
)

PROJECT = Path(__file__).resolve().parents[1]
TINY = [
    "data.num_nodes=1500",
    "data.avg_degree=10",
    "data.feat_dim=32",
    "data.num_classes=4",
    "fanouts=[5,5]",
    "model.hidden=32",
    "batch_size=100",
    "tensorboard=false",
    "device=cpu",
]


def _cfg(data_root: Path, *overrides: str):
    return compose_config(PROJECT / "configs", [*TINY, f"data.root={data_root}", *overrides])


def _result(metrics: dict) -> tuple:
    return (
        metrics["weights_sha256"],
        metrics["final_val_acc"],
        metrics["final_test_acc"],
        metrics["best"],
        [(h["loss"], h["train_acc"], h["val_acc"]) for h in metrics["history"]],
    )


@pytest.mark.parametrize("prefetch", [False, True])
def test_stop_in_the_middle_of_an_epoch_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch, prefetch
):
    data = tmp_path / "data"
    options = ("epochs=2", f"prefetch={str(prefetch).lower()}")
    (tmp_path / "reference").mkdir()
    monkeypatch.chdir(tmp_path / "reference")
    reference = training.train(_cfg(data, *options))

    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    calls = {"n": 0}

    def signal_in_epoch_1(self, step, force=False):
        calls["n"] += 1
        if step == 3 and calls["n"] > 8:  # past epoch 0's 8 steps and its boundary check
            self.signum = signal.SIGTERM
        return self.signum is not None

    monkeypatch.setattr(StopSignal, "requested", signal_in_epoch_1)
    with pytest.raises(RunStopped, match="in epoch 1 after step 3") as info:
        training.train(_cfg(data, *options))
    assert info.value.exit_code == 143
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]  # closed at the stop
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["steps_into_next_epoch"]) == (0, 3)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path / "run")
    resumed = training.train(_cfg(data, *options, "resume=true"))
    assert _result(resumed) == _result(reference)


def _sigterm_after_first_epoch(command: list[str], run: Path, env: dict) -> tuple[int, str]:
    """Start a run in ``run``, send it SIGTERM once epoch 0 is logged; (exit status, stderr)."""
    process = subprocess.Popen(
        [*command, f"hydra.run.dir={run}"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    signal_once_logged(process, run / "run.log", "epoch 0:")
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def _assert_same_final_result(reference: Path, run: Path) -> None:
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (reference, run)]
    assert metrics[0]["weights_sha256"] == metrics[1]["weights_sha256"]
    assert metrics[0]["final_test_acc"] == metrics[1]["final_test_acc"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data=folder", "data.path={tmp}/no_such_graph"], "no_such_graph"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, overrides, expected):
    overrides = [o.format(tmp=tmp_path) for o in overrides]
    command = [
        sys.executable,
        "train.py",
        "device=cpu",
        *overrides,
        f"hydra.run.dir={tmp_path}/run",
    ]
    assert expected in user_error_of(command, PROJECT)


def test_an_unknown_host_table_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path / "data", "host_table=nowhere")
    status, stderr = exit_of_entry_point(lambda: training.train(cfg), "train.py")
    assert status == 2 and "host_table" in stderr and len(stderr.strip().splitlines()) == 1


def test_crafted_checkpoint_runs_no_code_on_resume(tmp_path, monkeypatch):
    from trilab.safe_load import UnsafeFileError

    marker = tmp_path / "marker"
    write_crafted_torch_file(tmp_path / "checkpoints" / "last.pt", marker)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeFileError, match="last.pt"):
        training.train(_cfg(tmp_path / "data", "epochs=1", "resume=true"))
    assert not marker.exists()


def test_sigterm_under_torchrun_stops_both_ranks_at_one_place_and_resume_matches(tmp_path):
    """torchrun passes a SIGTERM on to its two workers: they agree where to stop, rank 0
    writes the checkpoint, and the resumed two-process run equals the uninterrupted one.

    The uninterrupted run shares the host tables through /dev/shm, the stopped and resumed one
    memory-maps them: every run's two ranks end with the same weights, and the two sharing
    modes give the same result."""
    data = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = torchrun_command("train.py", *TINY, f"data.root={data}", "epochs=12")
    run_to_completion(
        [*command, f"hydra.run.dir={tmp_path / 'reference'}", "host_table=shm"], PROJECT, env=env
    )
    run = tmp_path / "run"
    returncode, stderr = _sigterm_after_first_epoch(command, run, env)
    assert returncode != 0
    # one message per rank (the two may share a line of the common stderr), the same place
    stops = re.findall(r"train\.py: stopped by SIGTERM ([^;]*);", stderr)
    assert len(stops) == 2 and stops[0] == stops[1], stderr[-3000:]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] < 11
    run_to_completion([*command, f"hydra.run.dir={run}", "resume=true"], PROJECT, env=env)
    _assert_same_final_result(tmp_path / "reference", run)
    for folder, host_table in ((tmp_path / "reference", "shm"), (run, "mmap")):
        _assert_ranks_agree(folder, host_table)


def _assert_ranks_agree(run: Path, host_table: str) -> None:
    digests = [(run / f"weights_rank{r}.txt").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["weights_sha256"] == digests[0]
    tables = [json.loads((run / f"host_table_rank{r}.json").read_text()) for r in (0, 1)]
    assert tables[0] == tables[1] and tables[0]["kind"] == host_table
    if host_table == "shm":  # both processes mapped the same memory: one copy on the machine
        assert set(tables[0]["shared_memory"]) == {"feat", "indptr", "indices"}
        # and no name was left (this run's names: other tests may be sharing at the same time)
        assert not [
            e["path"] for e in tables[0]["shared_memory"].values() if Path(e["path"]).exists()
        ]
