"""trilab.entry: a run or output folder that cannot be created or written is one line naming
it and the reason, and exit status 2, for a Hydra entry point and for report_user_errors.

Root ignores permission bits, so a read-only mount or a missing permission is simulated by
making ``os.mkdir``/``os.open`` refuse paths under one folder; a file in the way is real.
"""

from __future__ import annotations

import errno
import os
import sys
import textwrap
from pathlib import Path

import pytest

from trilab.entry import FolderError, ensure_folder
from trilab.errors import file_in_the_way, report_user_errors
from trilab.testing import exit_of_entry_point


def refuse_under(monkeypatch, root: Path, code: int) -> None:
    """Make creating folders and files under ``root`` fail as the system would with ``code``
    (a read-only mount: EROFS; a folder without permission: EACCES; a full disk: ENOSPC)."""
    real_mkdir, real_open = os.mkdir, os.open

    def inside(path) -> bool:
        return Path(os.fsdecode(path)).absolute().is_relative_to(root)

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_file_in_the_way_is_the_nearest_existing_component_that_is_not_a_folder(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("")
    assert file_in_the_way(blocker / "a" / "b") == blocker
    assert file_in_the_way(blocker) == blocker
    assert file_in_the_way(tmp_path / "free" / "a") is None  # nothing in the way
    assert file_in_the_way(tmp_path) is None


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_a_folder_that_cannot_be_created_names_it_and_the_reason(tmp_path, monkeypatch, code):
    refuse_under(monkeypatch, tmp_path / "mount", code)
    with pytest.raises(FolderError) as info:
        ensure_folder(tmp_path / "mount" / "run", "run folder")
    assert str(info.value) == (
        f"cannot create run folder {tmp_path / 'mount' / 'run'}: {os.strerror(code)}"
    )


def test_an_existing_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    (tmp_path / "mount").mkdir()
    refuse_under(monkeypatch, tmp_path / "mount", errno.EROFS)
    with pytest.raises(FolderError, match="cannot write to output folder .*mount: Read-only"):
        ensure_folder(tmp_path / "mount")


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(FolderError) as info:
        ensure_folder(tmp_path / "runs" / "a")
    assert str(info.value) == (
        f"cannot create output folder {tmp_path / 'runs' / 'a'}: "
        f"{tmp_path / 'runs'} is a file, not a folder"
    )
    with pytest.raises(FolderError, match="runs is a file, not a folder"):
        ensure_folder(tmp_path / "runs")  # the folder itself is a file: EEXIST


def test_a_folder_that_can_be_written_is_created_and_left_clean(tmp_path):
    assert ensure_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the write check leaves nothing
    ensure_folder(tmp_path / "a" / "b")  # an existing folder is fine


def test_report_user_errors_names_a_file_in_the_way_and_keeps_other_eexist_a_bug(tmp_path):
    (tmp_path / "out").write_text("")
    status, stderr = exit_of_entry_point(
        lambda: (tmp_path / "out" / "preds").mkdir(parents=True), "predict.py"
    )
    assert status == 2
    assert stderr.strip() == (
        f"predict.py: error: {tmp_path / 'out' / 'preds'}: {tmp_path / 'out'} is a file, "
        "not a folder"
    )
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileExistsError):  # an existing folder in the way is the code's doing
        report_user_errors(lambda: (tmp_path / "folder").mkdir())


SCRIPT = """
from trilab import entry

@entry.main(config_path=None, config_name=None, program="toy.py")
def main(cfg):
    print("task ran in", cfg.hydra_dir if "hydra_dir" in cfg else "")

if __name__ == "__main__":
    main()
"""


def _run_toy(script: Path, monkeypatch, *overrides: str) -> tuple[int, str]:
    import runpy

    monkeypatch.setattr(sys, "argv", [str(script), *overrides])
    return exit_of_entry_point(lambda: runpy.run_path(str(script), run_name="__main__"), "toy.py")


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "toy.py"
    script.write_text(textwrap.dedent(SCRIPT))
    monkeypatch.chdir(tmp_path)
    return script


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_hydra_run_folder_refused_is_one_line_and_exit_2(toy, tmp_path, monkeypatch, capsys, code):
    refuse_under(monkeypatch, tmp_path / "mount", code)
    status, stderr = _run_toy(toy, monkeypatch, f"hydra.run.dir={tmp_path / 'mount' / 'run'}")
    assert status == 2
    assert stderr == (
        f"toy.py: error: cannot create run folder {tmp_path / 'mount' / 'run'}: "
        f"{os.strerror(code)}\n"
    )
    assert "task ran" not in capsys.readouterr().out


def test_hydra_run_folder_behind_a_file_and_an_unwritable_one(toy, tmp_path, monkeypatch):
    (tmp_path / "blocker").write_text("")
    status, stderr = _run_toy(toy, monkeypatch, f"hydra.run.dir={tmp_path / 'blocker' / 'run'}")
    assert (status, stderr) == (
        2,
        f"toy.py: error: cannot create run folder {tmp_path / 'blocker' / 'run'}: "
        f"{tmp_path / 'blocker'} is a file, not a folder\n",
    )
    (tmp_path / "mount").mkdir()
    refuse_under(monkeypatch, tmp_path / "mount", errno.EROFS)
    status, stderr = _run_toy(toy, monkeypatch, f"hydra.run.dir={tmp_path / 'mount'}")
    assert status == 2 and "cannot write to run folder" in stderr and "Read-only" in stderr


def test_hydra_sweep_folder_is_checked_too(toy, tmp_path, monkeypatch):
    (tmp_path / "blocker").write_text("")
    status, stderr = _run_toy(
        toy, monkeypatch, "--multirun", f"hydra.sweep.dir={tmp_path / 'blocker' / 'sweep'}"
    )
    assert status == 2 and "cannot create run folder" in stderr and "blocker is a file" in stderr


def test_a_writable_run_folder_runs_the_task_once_in_the_folder_hydra_names(
    toy, tmp_path, monkeypatch, capsys
):
    status, stderr = _run_toy(toy, monkeypatch, "hydra.run.dir=runs/${now:%H-%M-%S-%f}")
    assert status == 0, stderr
    assert "task ran" in capsys.readouterr().out
    # one folder: the callback and Hydra resolved ${now:} once, and Hydra's files are in it
    (folder,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in (folder / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    assert sys.argv == [str(toy), "hydra.run.dir=runs/${now:%H-%M-%S-%f}"]  # argv restored


def test_user_errors_in_the_task_are_still_one_line(tmp_path, monkeypatch):
    script = tmp_path / "bad.py"
    script.write_text(
        textwrap.dedent(
            """
            from trilab import entry
            from trilab.errors import UserError

            @entry.main(config_path=None, config_name=None, program="bad.py")
            def main(cfg):
                raise UserError("data.root /nowhere does not exist")

            if __name__ == "__main__":
                main()
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    status, stderr = _run_toy(script, monkeypatch)
    assert (status, stderr) == (2, "bad.py: error: data.root /nowhere does not exist\n")


def test_a_disk_that_fills_before_hydra_writes_its_config_is_one_line(
    toy, tmp_path, monkeypatch, capsys
):
    """The folder check passed, then Hydra's own .hydra/config.yaml write meets a full disk:
    one line naming the file, exit 2, the task not run; Hydra is restored afterwards."""
    import hydra.core.utils as hydra_utils

    original = hydra_utils._save_config

    def full_disk_open(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(hydra_utils, "open", full_disk_open, raising=False)
    status, stderr = _run_toy(toy, monkeypatch, f"hydra.run.dir={tmp_path / 'run'}")
    assert (status, stderr) == (
        2,
        f"toy.py: error: cannot write {tmp_path / 'run' / '.hydra' / 'config.yaml'}: "
        f"{os.strerror(errno.ENOSPC)}\n",
    )
    assert "task ran" not in capsys.readouterr().out
    assert hydra_utils._save_config is original
