"""Every entry point of the three projects answers a run or output folder it cannot create or
write with one line naming the folder and the reason, and exit status 2 (issue 30 §1).

The scripts run in this process (``runpy``, as ``python SCRIPT ARGS`` would run them, without an
interpreter start each); one real command line per project proves the wiring.  A read-only
mount or a folder without permission is simulated (root ignores permission bits); a file in the
way of the folder is real.
"""

from __future__ import annotations

import errno
import os
import runpy
import sys
from pathlib import Path

import pytest
from test_trilab_entry import refuse_under

from trilab.testing import exit_of_entry_point, user_error_of

REPO = Path(__file__).resolve().parents[2]

# (script, the option that names its run folder)
HYDRA_ENTRY_POINTS = [
    ("glagcn/train.py", "hydra.run.dir"),
    ("glagcn/evaluate.py", "hydra.run.dir"),
    ("glagcn/predict.py", "output"),  # its run folder is ${output}
    ("drag/train.py", "hydra.run.dir"),
    ("drag/evaluate.py", "hydra.run.dir"),
    ("drag/predict.py", "hydra.run.dir"),
    ("drag/explain.py", "hydra.run.dir"),
    ("drag/cluster_channels.py", "hydra.run.dir"),
    ("zerocopy-gcn/train.py", "hydra.run.dir"),
]


def test_every_project_script_is_listed_and_uses_trilab_entry():
    # a new script at a project's root is a new entry point: it joins the list (and the tests)
    scripts = {
        str(path.relative_to(REPO))
        for project in ("glagcn", "drag", "zerocopy-gcn")
        for path in (REPO / project).glob("*.py")
    }
    assert scripts == {script for script, _ in HYDRA_ENTRY_POINTS}
    for script in scripts:
        assert "@entry.main(" in (REPO / script).read_text(), script


def run_script(script: str, monkeypatch, *args: str) -> tuple[int, str]:
    """Exit status and standard error of ``python SCRIPT ARGS``, run in this process."""
    path = REPO / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    return exit_of_entry_point(
        lambda: runpy.run_path(str(path), run_name="__main__"), Path(script).name
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # a run that got through would write here, not in the repo
    return tmp_path


@pytest.mark.parametrize(("script", "key"), HYDRA_ENTRY_POINTS)
def test_run_folder_on_a_read_only_mount(script, key, workdir, monkeypatch):
    folder = workdir / "mount" / "run"
    refuse_under(monkeypatch, workdir / "mount", errno.EROFS)
    status, stderr = run_script(script, monkeypatch, f"{key}={folder}")
    assert status == 2
    assert one_line(stderr) == (
        f"{Path(script).name}: error: cannot create run folder {folder}: Read-only file system"
    )


@pytest.mark.parametrize(("script", "key"), HYDRA_ENTRY_POINTS)
def test_run_folder_behind_a_file(script, key, workdir, monkeypatch):
    (workdir / "runs").write_text("not a folder")
    folder = workdir / "runs" / "a"
    status, stderr = run_script(script, monkeypatch, f"{key}={folder}")
    assert status == 2
    assert one_line(stderr) == (
        f"{Path(script).name}: error: cannot create run folder {folder}: "
        f"{workdir / 'runs'} is a file, not a folder"
    )


@pytest.mark.parametrize(("script", "key"), HYDRA_ENTRY_POINTS)
def test_existing_run_folder_without_permission(script, key, workdir, monkeypatch):
    folder = workdir / "locked"
    folder.mkdir()
    refuse_under(monkeypatch, folder, errno.EACCES)
    status, stderr = run_script(script, monkeypatch, f"{key}={folder}")
    assert status == 2
    assert one_line(stderr) == (
        f"{Path(script).name}: error: cannot write to run folder {folder}: Permission denied"
    )


# folders the projects create themselves, beside Hydra's run folder: (script, its out= value,
# the folder that names, what the folder is for)
@pytest.mark.parametrize(
    ("script", "out", "folder", "role"),
    [
        ("drag/predict.py", "runs/sub/preds.csv", "runs/sub", "output folder"),
        ("drag/explain.py", "runs/figures", "runs/figures", "figures folder"),
    ],
)
def test_output_folder_behind_a_file_or_read_only(script, out, folder, role, workdir, monkeypatch):
    (workdir / "runs").write_text("not a folder")
    args = ("images=photos", "checkpoint=best.pt", f"hydra.run.dir={workdir / 'run'}")
    status, stderr = run_script(script, monkeypatch, *args, f"out={workdir / out}")
    assert status == 2
    assert one_line(stderr) == (
        f"{Path(script).name}: error: cannot create {role} {workdir / folder}: "
        f"{workdir / 'runs'} is a file, not a folder"
    )
    (workdir / "runs").unlink()
    refuse_under(monkeypatch, workdir / "runs", errno.EROFS)
    status, stderr = run_script(script, monkeypatch, *args, f"out={workdir / out}")
    assert status == 2
    assert one_line(stderr).endswith(f"{role} {workdir / folder}: Read-only file system")


def test_drag_converter_target_folder(workdir, monkeypatch):
    (workdir / "runs").write_text("not a folder")
    sources = ["--backbone", "b.pt", "--cgl", "c.pt", "--head", "h.pt", "--groups", "4"]
    out = workdir / "runs" / "w" / "drag.pt"
    # its __main__ block, as python -m drag.convert_checkpoint runs it
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint", *sources, str(out)])
    status, stderr = exit_of_entry_point(
        lambda: runpy.run_module("drag.convert_checkpoint", run_name="__main__"), "unused"
    )
    assert status == 2
    assert one_line(stderr) == (
        f"drag.convert_checkpoint: error: cannot create output folder {out.parent}: "
        f"{workdir / 'runs'} is a file, not a folder"
    )


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOTDIR])
def test_glagcn_converter_target_folder(code, workdir, monkeypatch):
    import torch

    from glagcn.model.authors_reference import random_authors_state_dict

    source = workdir / "authors.bin"  # a small checkpoint as their run_s-agcn.py saves one
    torch.save({"model_pos": random_authors_state_dict(8, [3, 3], 17), "epoch": 1}, source)
    if code == errno.ENOTDIR:
        (workdir / "runs").write_text("not a folder")
        reason = f"{workdir / 'runs'} is a file, not a folder"
    else:
        refuse_under(monkeypatch, workdir / "runs", code)
        reason = os.strerror(code)
    target = workdir / "runs" / "w" / "converted.pt"
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint", str(source), str(target)])
    status, stderr = exit_of_entry_point(
        lambda: runpy.run_module("glagcn.convert_checkpoint", run_name="__main__"), "unused"
    )
    line = one_line(stderr)
    assert status == 2 and line.startswith("glagcn.convert_checkpoint: error: ")
    assert str(target) in line and reason in line


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOTDIR])
def test_zerocopy_graph_converter_target_folder(code, workdir, monkeypatch):
    from zerocopy_gcn.graph.convert import main

    if code == errno.ENOTDIR:
        (workdir / "graphs").write_text("not a folder")
    else:
        refuse_under(monkeypatch, workdir / "graphs", code)
    out = workdir / "graphs" / "g"
    status, stderr = exit_of_entry_point(
        lambda: main(["rmat", "reddit_like", str(out), "--num-nodes", "50"]),
        "zerocopy_gcn.graph.convert",
    )
    assert status == 2 and str(out) in one_line(stderr)
    if code == errno.EROFS:
        assert os.strerror(code) in stderr


# the demo-data generators: python -m glagcn.data.synthesize / drag.data.synthesize
GENERATORS = [
    ("glagcn.data.synthesize", ["--frames", "4"]),
    ("drag.data.synthesize", ["--n", "2", "--size", "32"]),
]


@pytest.mark.parametrize(("module", "args"), GENERATORS)
@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOTDIR])
def test_demo_data_generator_target_folder(module, args, code, workdir, monkeypatch):
    if code == errno.ENOTDIR:
        (workdir / "data").write_text("not a folder")
        reason = f"{workdir / 'data'} is a file, not a folder"
    else:
        refuse_under(monkeypatch, workdir / "data", code)
        reason = os.strerror(code)
    out = workdir / "data" / "synthetic"
    monkeypatch.setattr(sys, "argv", [module, "--out", str(out), *args])
    status, stderr = exit_of_entry_point(
        lambda: runpy.run_module(module, run_name="__main__"), "unused"
    )
    line = one_line(stderr)
    assert status == 2 and line.startswith(f"python -m {module}: error: cannot create ")
    assert str(out) in line and reason in line


# one real command line per project: the scripts' wiring, as a user meets it
@pytest.mark.parametrize(
    "command",
    [
        ["glagcn/predict.py", "input=k.npz", "checkpoint=c.pt", "output={}"],
        ["drag/train.py", "hydra.run.dir={}"],
        ["zerocopy-gcn/train.py", "hydra.run.dir={}"],
    ],
)
def test_command_line_answers_a_file_in_the_way(command, tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    target = tmp_path / "runs" / "run"
    script, *args = (arg.format(target) for arg in command)
    stderr = user_error_of([sys.executable, str(REPO / script), *args], tmp_path, timeout=120)
    assert stderr.strip() == (
        f"{Path(script).name}: error: cannot create run folder {target}: "
        f"{tmp_path / 'runs'} is a file, not a folder"
    )
