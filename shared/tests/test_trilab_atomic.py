"""Atomic writes: whole or not at all, and a refused write is one line naming the file, also
when torch's zip writer is the one that meets the full disk."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from trilab import atomic
from trilab.atomic import atomic_save, atomic_write_text
from trilab.errors import WriteError
from trilab.testing import disk_full_after


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_torch_writers_failure_on_a_full_disk_is_one_line_and_keeps_the_file(tmp_path, code):
    """torch.save meets the refusal inside its zip writer and reports it as
    ``RuntimeError: [enforce fail at inline_container.cc:...] unexpected pos``."""
    path = atomic_save({"weights": torch.ones(10)}, tmp_path / "last.pt")
    before = path.read_bytes()
    with disk_full_after(5000, code=code), pytest.raises(WriteError) as info:
        atomic_save({"weights": torch.zeros(100_000)}, path)
    assert str(info.value) == (
        f"cannot write {path}: {os.strerror(code)}; the file there before (if any) is unchanged"
    )
    assert isinstance(info.value.__context__, RuntimeError)  # what torch raised
    assert "inline_container" in str(info.value.__context__)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_write_refused_before_torch_writes_anything_is_the_same_line(tmp_path):
    with (
        disk_full_after(0, under=tmp_path),
        pytest.raises(WriteError, match=r"cannot write .*metrics.json: No space left on device"),
    ):
        atomic_write_text(tmp_path / "metrics.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_a_torch_error_that_is_no_refused_write_stays_a_bug(tmp_path):
    def broken(handle):
        raise RuntimeError("[enforce fail at inline_container.cc:1] . a bug, not a full disk")

    with pytest.raises(RuntimeError, match="a bug"):
        atomic.atomic_write(tmp_path / "x.pt", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_of_the_folder_is_one_line_naming_it(tmp_path):
    (tmp_path / "run").write_text("a file where the run folder goes")
    with pytest.raises(WriteError, match=r"cannot write .*metrics.json: .*run is a file, not a"):
        atomic_write_text(tmp_path / "run" / "sub" / "metrics.json", "{}")
