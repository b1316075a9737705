"""No code from data: restricted npz/npy/torch loading, checkpoints, user errors."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from trilab.checkpoint import (
    CheckpointError,
    find_resume_checkpoint,
    load_checkpoint,
    read_checkpoint,
    resume_position,
    save_checkpoint,
)
from trilab.errors import RunStopped, UserError, report_user_errors
from trilab.safe_load import (
    DataFileError,
    UnsafeFileError,
    load_npy,
    load_npz,
    load_torch_file,
)
from trilab.testing import RecordingLogger, write_crafted_npz, write_crafted_torch_file


def test_videopose3d_style_object_npz_loads_as_data(tmp_path):
    positions = {"S1": {"Walking 1": [np.ones((5, 17, 2), np.float32) * i for i in range(4)]}}
    metadata = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    }
    path = tmp_path / "data_2d_h36m_gt.npz"
    np.savez_compressed(
        path,
        positions_2d=positions,
        metadata=metadata,
        plain=np.arange(6, dtype=np.int16).reshape(2, 3),
    )
    loaded = load_npz(path)
    cams = loaded["positions_2d"].item()["S1"]["Walking 1"]
    assert len(cams) == 4 and cams[3].dtype == np.float32 and float(cams[3][0, 0, 0]) == 3.0
    assert loaded["metadata"].item()["keypoints_symmetry"][0] == [4, 5, 6, 11, 12, 13]
    np.testing.assert_array_equal(loaded["plain"], np.arange(6).reshape(2, 3))
    assert loaded["plain"].dtype == np.int16


def test_numpy_scalars_tuples_and_fortran_arrays_are_data(tmp_path):
    payload = np.empty(1, dtype=object)
    payload[0] = (np.float64(2.5), "a", b"xy", None, True)
    np.save(tmp_path / "obj.npy", payload)
    back = load_npy(tmp_path / "obj.npy")
    assert back[0] == (2.5, "a", b"xy", None, True)
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.save(tmp_path / "f.npy", fortran)
    np.testing.assert_array_equal(load_npy(tmp_path / "f.npy"), fortran)


def test_crafted_npz_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    write_crafted_npz(path, marker, "positions_2d")
    with pytest.raises(UnsafeFileError, match=r"evil\.npz.*(posix|os)\.system"):
        load_npz(path)["positions_2d"]
    assert not marker.exists()
    # the same file through numpy's own loader would have run it: the test's premise holds
    np.load(path, allow_pickle=True)["positions_2d"]
    assert marker.exists()


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    path = tmp_path / "good.npz"
    np.savez(path, a=np.zeros(1000))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFileError, match="truncated.npz"):
        load_npz(truncated)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataFileError, match="text.npz"):
        load_npz(tmp_path / "text.npz")
    with pytest.raises(DataFileError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")


def test_crafted_torch_file_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    write_crafted_torch_file(path, marker, {"model": {"w": torch.zeros(1)}})
    with pytest.raises(UnsafeFileError, match=r"evil\.pt.*system"):
        load_torch_file(path)
    with pytest.raises(UserError, match=r"evil\.pt"):
        read_checkpoint(path)
    with pytest.raises(UserError, match=r"evil\.pt"):
        load_checkpoint(path, model=torch.nn.Linear(1, 1))
    assert not marker.exists()


def test_own_checkpoints_load_with_weights_only_and_restore_numpy_rng(tmp_path):
    model = torch.nn.Linear(2, 2)
    np.random.seed(3)
    np.random.rand(5)
    path = save_checkpoint(tmp_path / "last.pt", model=model, epoch=4, steps_into_next_epoch=7)
    expected = np.random.rand(3)
    np.random.rand(11)
    torch.load(path, weights_only=True)  # the property itself
    payload = load_checkpoint(path, model=model)
    np.testing.assert_array_equal(np.random.rand(3), expected)
    assert resume_position(payload) == (5, 7)


def test_mismatch_report_is_short(tmp_path):
    big = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(20)])
    small = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(20)])
    path = save_checkpoint(tmp_path / "big.pt", model=big, epoch=0)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=small)
    message = str(info.value)
    assert "does not fit the model" in message and "and 37 more" in message
    assert message.count("size mismatch") == 3


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    log = RecordingLogger()
    assert find_resume_checkpoint(tmp_path / "checkpoints" / "last.pt", True, log) is None
    assert "nothing to resume" in log.lines[0] and "starting a new run" in log.lines[0]
    assert find_resume_checkpoint(tmp_path / "x.pt", False, log) is None and len(log.lines) == 1
    path = save_checkpoint(tmp_path / "last.pt", model=torch.nn.Linear(1, 1), epoch=0)
    assert find_resume_checkpoint(path, True, log) == path


def test_user_errors_exit_2_stops_exit_with_signal_status(capsys):
    def bad():
        raise UserError("data.root /nowhere does not exist")

    with pytest.raises(SystemExit) as info:
        report_user_errors(bad, program="train")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "train: error: data.root /nowhere does not exist"

    def stopped():
        raise RunStopped("stopped at epoch 1 step 3", 143)

    with pytest.raises(SystemExit) as info:
        report_user_errors(stopped)
    assert info.value.code == 143

    def bug():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        report_user_errors(bug)

    def read_only_folder():
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/runs/a/poses_3d.npz")

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:  # a refusal of the system is the user's to fix
        report_user_errors(read_only_folder, program="predict.py")
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"predict.py: error: /runs/a/poses_3d.npz: {os.strerror(errno.EROFS)}"
    )
    with pytest.raises(FileNotFoundError):  # a file the code itself expected: a bug
        report_user_errors(lambda: open("/nonexistent/x"))  # noqa: SIM115


def test_members_are_read_only_when_used_and_bombs_are_refused(tmp_path):
    import zipfile

    path = tmp_path / "bomb.npz"
    np.savez_compressed(
        path, positions_2d=np.arange(6.0), unused=np.zeros(200 * 2**20, dtype=np.uint8)
    )  # 200 MiB of zeros
    assert zipfile.ZipFile(path).getinfo("unused.npy").compress_size < 1 * 2**20
    archive = load_npz(path)
    assert sorted(archive) == ["positions_2d", "unused"]
    np.testing.assert_array_equal(archive["positions_2d"], np.arange(6.0))  # never reads unused
    with pytest.raises(DataFileError, match=r"bomb\.npz\['unused'\] would decompress .* bomb"):
        archive["unused"]


def test_shared_references_that_would_expand_are_refused(tmp_path):
    level = [np.zeros(4)]
    for _ in range(30):  # 2 ** 30 references to one small array in a few hundred bytes
        level = [level, level]
    path = tmp_path / "nested.npz"
    np.savez(path, data=np.array({"S1": level}, dtype=object))
    assert path.stat().st_size < 10_000
    with pytest.raises(DataFileError, match="nested.npz.*refer to the same objects"):
        load_npz(path)["data"]
