"""The training loop's mechanics on a toy project: stops and resumes at any step end where the
uninterrupted run ends (one process and two under torchrun), NaN losses stop a run without
checkpointing, and a run folder is never silently replaced, shared or left with debris."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from trilab_toy_training import train

from trilab.checkpoint import CheckpointError
from trilab.errors import RunStopped, WriteError
from trilab.finite import NonFiniteLossError
from trilab.loop import epoch_order, steps_per_epoch
from trilab.run_folder import RunFolderError, claim_run_folder
from trilab.runlog import read_scalars
from trilab.testing import (
    exit_of_entry_point,
    run_to_completion,
    signal_once_logged,
    torchrun_command,
)

TOY = Path(__file__).with_name("trilab_toy_training.py")
STEPS_PER_EPOCH = 12  # 48 items, batches of 4


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _checkpoint(run: Path, name: str = "last.pt") -> dict:
    return torch.load(run / "checkpoints" / name, weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict, Path]:
    run = tmp_path_factory.mktemp("uninterrupted")
    return train(run), run


@pytest.mark.parametrize("signal_at", [(1, 2), (0, STEPS_PER_EPOCH - 1), (2, 0), (0, -1)])
def test_a_stop_at_any_step_resumes_to_the_uninterrupted_run(uninterrupted, tmp_path, signal_at):
    """Mid-epoch, after an epoch's last step, at its first, and during its evaluation (the
    stop then comes at the epoch's end)."""
    reference, reference_run = uninterrupted
    epoch, step = signal_at
    with pytest.raises(RunStopped) as info:
        train(tmp_path, signal_at=signal_at)
    assert info.value.exit_code == 128 + signal.SIGTERM
    where = f"after epoch {epoch}" if step < 0 else f"in epoch {epoch} after step {step + 1}"
    assert where in str(info.value) and "resume=true" in str(info.value)
    assert f"SIGTERM: stopped {where}" in (tmp_path / "run.log").read_text()
    saved = _checkpoint(tmp_path)
    position = (epoch, 0) if step < 0 else (epoch - 1, step + 1)
    assert (saved["epoch"], saved["steps_into_next_epoch"]) == position

    _same_weights(train(tmp_path, resume=True), reference)
    records, expected = read_scalars(tmp_path), read_scalars(reference_run)
    assert [r["step"] for r in records] == [0, 1, 2]  # each epoch logged once
    for ours, theirs in zip(records, expected, strict=True):
        for key in ("train/loss", "val/loss", "train/items"):  # sums carried over the stop
            assert ours[key] == theirs[key], key
    _same_weights(
        _checkpoint(tmp_path, "best.pt")["model"], _checkpoint(reference_run, "best.pt")["model"]
    )
    assert "resumed from" in (tmp_path / "run.log").read_text()


def test_resume_with_nothing_to_resume_says_so_and_starts_at_epoch_0(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    _same_weights(train(tmp_path, resume=True), reference)
    assert "nothing to resume" in (tmp_path / "run.log").read_text()


def test_a_nan_loss_stops_the_run_without_overwriting_the_last_good_checkpoint(tmp_path):
    train(tmp_path, epochs=1)
    good = _checkpoint(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 1 step 3.*last good checkpoint"):
        train(tmp_path, epochs=3, resume=True, nan_at=(1, 3))
    after = _checkpoint(tmp_path)
    assert after["epoch"] == good["epoch"] == 0
    _same_weights(after["model"], good["model"])


def test_ctrl_c_stops_like_sigterm_with_exit_130_in_one_line(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    status, stderr = exit_of_entry_point(
        lambda: train(tmp_path, signal_at=(1, 2), signum=signal.SIGINT), "toy_train.py"
    )
    last_line = stderr.strip().splitlines()[-1]  # after the log lines and progress bars
    assert status == 130 and "Traceback" not in stderr
    assert last_line.startswith("toy_train.py: stopped by SIGINT in epoch 1 after step 3")
    assert "resume=true" in last_line
    _same_weights(train(tmp_path, resume=True), reference)


def test_a_real_signal_exits_128_plus_signal_in_one_line_and_resume_matches(
    uninterrupted, tmp_path
):
    """A SIGTERM from outside the process (a scheduler's); Ctrl-C's SIGINT takes the same path
    (the test above)."""
    reference, _ = uninterrupted
    signum = signal.SIGTERM
    command = [sys.executable, str(TOY), str(tmp_path), "step_seconds=0.02"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signal_once_logged(process, tmp_path / "run.log", "epoch 0:", signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    last_line = stderr.strip().splitlines()[-1]  # after the log lines and progress bars
    assert "Traceback" not in stderr and last_line.startswith("toy_train.py: stopped by ")
    assert f"stopped by {signal.Signals(signum).name}" in last_line and "resume=true" in last_line
    run_to_completion([*command, "resume=true"], timeout=120)
    weights = json.loads((tmp_path / "weights_rank0.json").read_text())
    _same_weights({k: torch.tensor(v) for k, v in weights.items()}, reference)


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_both_ranks_at_one_step_and_resume_matches(tmp_path):
    """torchrun passes a SIGTERM on to both workers at slightly different moments: the ranks
    agree on one step, rank 0 alone writes (with both ranks' RNG states), and the resumed
    two-process run ends with the uninterrupted two-process run's weights on both ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    run_to_completion(torchrun_command(str(TOY), str(reference), "epochs=4"), env=env)

    run = tmp_path / "run"
    command = torchrun_command(str(TOY), str(run), "epochs=4", "step_seconds=0.05")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    signal_once_logged(process, run / "run.log", "epoch 0:")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    stops = re.findall(r"toy_train\.py: stopped by SIGTERM ([^;]*);", stderr)
    assert len(stops) == 2 and stops[0] == stops[1], stderr[-3000:]
    assert (run / "run.log").read_text().count("stopped ") == 1  # rank 0 logs, rank 1 raises
    saved = _checkpoint(run)
    assert len(saved["rng_per_rank"]) == 2
    if stops[0].startswith("in epoch"):
        assert saved["steps_into_next_epoch"] % 10 == 0  # the ranks agree every 10 steps
    run_to_completion(torchrun_command(str(TOY), str(run), "epochs=4", "resume=true"), env=env)
    for rank in (0, 1):
        name = f"weights_rank{rank}.json"
        assert json.loads((run / name).read_text()) == json.loads((reference / name).read_text())
        # the per-rank seed rule under torchrun: rank r seeds its generators with seed + r
        assert json.loads((run / f"seed_rank{rank}.json").read_text()) == 0 + rank


def test_epoch_order_is_a_function_of_seed_and_epoch_shared_out_to_ranks():
    first = epoch_order(10, seed=3, epoch=1)
    assert np.array_equal(first, epoch_order(10, seed=3, epoch=1))
    assert sorted(first) == list(range(10))
    assert not np.array_equal(first, epoch_order(10, seed=3, epoch=2))
    shares = [epoch_order(10, seed=3, epoch=1, rank=r, world_size=3) for r in range(3)]
    assert all(len(share) == 3 for share in shares)  # the remainder is left out
    assert np.array_equal(np.concatenate(shares), first[:9])
    weights = np.r_[np.full(10, 9.0), np.full(90, 1.0)]  # 10 rare items drawn as often as 90
    drawn = epoch_order(100, seed=0, epoch=0, weights=weights)
    assert 0.35 < np.mean(drawn < 10) < 0.65


# A run folder is never silently replaced, shared by two runs or left with debris.


def test_steps_per_epoch_is_one_ranks_share_in_batches_the_last_one_partial():
    for items, batch, world, cap, expected in [
        (48, 4, 1, None, 12),
        (50, 4, 1, None, 13),
        (50, 4, 2, None, 7),
        (50, 4, 2, 3, 3),
        (3, 4, 4, None, 0),
    ]:
        assert steps_per_epoch(items, batch, world, cap) == expected
        if cap is None:  # the batches of this rank's share of epoch_order
            share = len(epoch_order(items, 0, 0, rank=world - 1, world_size=world))
            assert expected == -(-share // batch)


def test_rerunning_into_a_folder_that_holds_a_run_is_refused_in_one_line(tmp_path):
    train(tmp_path, epochs=1)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    scalars = (tmp_path / "scalars.jsonl").read_text()
    with pytest.raises(RunFolderError) as info:
        train(tmp_path, epochs=1)
    message = str(info.value)
    assert str(tmp_path) in message and "resume=true" in message and "overwrite=true" in message
    assert "\n" not in message
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert (tmp_path / "scalars.jsonl").read_text() == scalars


def test_overwrite_removes_the_old_run_first(tmp_path):
    train(tmp_path, epochs=2)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("this run's configuration")
    train(tmp_path, epochs=1, overwrite=True)
    assert [r["step"] for r in read_scalars(tmp_path)] == [0]
    assert _checkpoint(tmp_path)["epoch"] == 0
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    with pytest.raises(RunFolderError, match="exclude each other"):
        train(tmp_path, resume=True, overwrite=True)


def test_a_folder_with_an_empty_log_or_only_a_config_is_not_a_run(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "scalars.jsonl").write_text("")  # a run that failed before its first epoch
    train(tmp_path, epochs=1)


def test_a_second_run_in_the_same_folder_at_once_is_refused(tmp_path):
    with claim_run_folder(tmp_path, resume=False, overwrite=False):
        with pytest.raises(RunFolderError, match=rf"in use by another run \(process {os.getpid()}"):
            train(tmp_path, epochs=1)
    train(tmp_path, epochs=1)  # the lock went with the first run


def test_a_second_process_is_refused_while_the_first_trains(tmp_path):
    first = subprocess.Popen(
        [sys.executable, str(TOY), str(tmp_path), "step_seconds=0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run.log").is_file():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(
            [sys.executable, str(TOY), str(tmp_path), "resume=true"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        first.kill()
        first.communicate()
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert "in use by another run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


def test_stale_temporary_files_are_removed_on_start(tmp_path):
    train(tmp_path, epochs=1)
    orphans = [
        tmp_path / "checkpoints" / ".last.pt.3fa9c01b.tmp",
        tmp_path / ".metrics.json.0f3a9c1b.tmp",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / "checkpoints" / ".notes.tmp"
    unrelated.write_text("not ours")
    train(tmp_path, epochs=2, resume=True)
    assert not any(orphan.exists() for orphan in orphans)
    assert unrelated.exists()


def test_checkpoints_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        train(tmp_path, epochs=1)
    finally:
        os.umask(previous)
    for name in ("last.pt", "best.pt"):
        assert (tmp_path / "checkpoints" / name).stat().st_mode & 0o777 == 0o640


def _only_checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


@pytest.mark.parametrize(
    ("target", "code"),
    [("torch.save", errno.ENOSPC), ("os.replace", errno.EROFS), ("os.open", errno.EACCES)],
)
def test_a_refused_checkpoint_write_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, target, code
):
    train(tmp_path, epochs=1)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    module, name = target.split(".")
    real = getattr(sys.modules[module], name)

    def refuse(*args, **kwargs):
        target = str(args[-1] if name == "replace" else args[0])
        if name != "save" and not ("checkpoints" in target and ".tmp" in str(args[0])):
            return real(*args, **kwargs)  # the run's other files (config.yaml) are written
        if name == "save":
            args[1].write(b"part of a checkpoint")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(sys.modules[module], name, refuse)
    with pytest.raises(WriteError) as info:
        train(tmp_path, epochs=2, resume=True)
    monkeypatch.undo()
    message = str(info.value)
    assert "\n" not in message and os.strerror(code) in message
    assert str(tmp_path / "checkpoints") in message
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert _only_checkpoints(tmp_path) == ["best.pt", "last.pt"]  # no temporary left


def test_resuming_with_another_optimizer_names_both(tmp_path):
    train(tmp_path, epochs=1, optimizer="adam")
    with pytest.raises(CheckpointError) as info:
        train(tmp_path, epochs=2, resume=True, optimizer="sgd")
    message = str(info.value)
    assert str(tmp_path / "checkpoints" / "last.pt") in message
    assert "Adam(lr=0.01" in message and "SGD(lr=0.01" in message and "momentum=0.9" in message


def test_user_errors_of_a_run_print_one_line_and_exit_2(tmp_path):
    train(tmp_path, epochs=1)
    done = subprocess.run(
        [sys.executable, str(TOY), str(tmp_path), "epochs=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "overwrite=true" in done.stderr
