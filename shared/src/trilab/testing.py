"""Test support shared by the three projects' test suites.

Installed with ``trilab`` so each project's tests import one copy; it imports neither pytest nor
anything a product module does not already depend on.

- :class:`RunsCodeWhenUnpickled`, :func:`write_crafted_torch_file`, :func:`write_crafted_npz`: a
  "pickle that runs code", for the tests that prove a loader refuses it before it runs.
- :class:`RecordingLogger`: a stand-in for :class:`trilab.runlog.RunLogger` that keeps what it
  was told, for tests that assert on what a function logs.
- :func:`torchrun_command`, :func:`signal_once_logged`, :func:`run_to_completion`: a
  two-process job, a scheduler's signal sent to a run at a chosen point, and a run that must
  finish, for the stop-and-resume tests.
- :func:`modules_loaded_by`: what importing some modules drags in, for the tests that keep
  inference free of training code.
- :func:`user_error_of`, :func:`exit_of_entry_point`: an entry point's message for a user's
  mistake, from a real command line or without starting an interpreter.
- :func:`disk_full_after`: a disk that fills up in the middle of an atomic write, for the tests
  of what a full disk does to a checkpoint or any other file.
- :func:`compose_config`: a project's real Hydra configuration with a test's overrides, as the
  entry point would compose it, without leaving Hydra's global state behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class RunsCodeWhenUnpickled:
    """Unpickling this object runs ``touch <marker>`` through ``os.system``: what a hostile file
    would do.  A test writes it into a file, loads the file, and checks ``marker`` was not
    created; a refusal message names the global it met (``posix.system`` on Linux)."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def write_crafted_torch_file(
    path: str | Path, marker: str | Path, payload: Mapping[str, Any] | None = None
) -> Path:
    """``torch.save`` ``payload`` (a checkpoint-shaped dict by default) with a
    :class:`RunsCodeWhenUnpickled` under ``"extra"``; parent folders are created.  Returns
    ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = dict({"model": {}, "epoch": 0} if payload is None else payload)
    content["extra"] = RunsCodeWhenUnpickled(marker)
    torch.save(content, path)
    return path


def write_crafted_npz(path: str | Path, marker: str | Path, *members: str, **arrays: Any) -> Path:
    """``np.savez`` an npz whose ``members`` are object arrays holding
    ``{"S1": RunsCodeWhenUnpickled(marker)}`` (the nesting of a VideoPose3D dataset file), beside
    the plain ``arrays``.  Returns ``path``."""
    import numpy as np

    path = Path(path)
    crafted = np.array([{"S1": RunsCodeWhenUnpickled(marker)}], dtype=object)
    np.savez(path, **{name: crafted for name in members}, **arrays)
    return path


class RecordingLogger:
    """A stand-in for :class:`trilab.runlog.RunLogger` that records its ``info``/``warning``
    messages and ``log_scalars`` calls instead of writing them; ``progress`` passes the iterable
    through."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []
        self.scalars: list[tuple[int, dict[str, Any]]] = []

    def info(self, message: str) -> None:
        self.records.append(("info", message))

    def warning(self, message: str) -> None:
        self.records.append(("warning", message))

    def log_scalars(self, scalars: Mapping[str, Any], step: int) -> None:
        self.scalars.append((step, dict(scalars)))

    def progress(self, iterable: Iterable[T], **_: Any) -> Iterable[T]:
        return iterable

    @property
    def lines(self) -> list[str]:
        """Every message, in order, whatever its level."""
        return [message for _, message in self.records]

    @property
    def warnings(self) -> list[str]:
        return [message for level, message in self.records if level == "warning"]

    def text(self) -> str:
        return "\n".join(self.lines)


def torchrun_command(*args: str, nproc: int = 2) -> list[str]:
    """The command running ``args`` (a script and its arguments) as a single-machine torchrun job
    of ``nproc`` workers, with this interpreter."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *args,
    ]


def signal_once_logged(
    process: subprocess.Popen,
    log: str | Path,
    text: str,
    signum: int = signal.SIGTERM,
    timeout: float = 120.0,
) -> None:
    """Send ``signum`` to ``process`` as soon as ``text`` appears in the file ``log``.

    Raises ``AssertionError`` (with the process's stderr) if the process ends first, or if
    ``timeout`` seconds pass without the text.  Polling the file keeps the signal's arrival
    tied to a point in the run rather than to a sleep that a slow machine would outrun."""
    log = Path(log)
    deadline = time.monotonic() + timeout
    while not (log.is_file() and text in log.read_text()):
        if process.poll() is not None:
            raise AssertionError(f"run ended before {text!r}: {process.communicate()[1]}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{text!r} never appeared in {log}")
        time.sleep(0.02)
    process.send_signal(signum)


def modules_loaded_by(imports: Sequence[str], watched: Sequence[str]) -> list[str]:
    """Which of the ``watched`` modules a fresh interpreter has loaded after importing
    ``imports`` (a fresh one: this process has imported everything the tests did)."""
    code = (
        f"import sys, {', '.join(imports)}; "
        f"print(','.join(sorted(m for m in sys.modules if m in {tuple(watched)!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [name for name in done.stdout.strip().split(",") if name]


def exit_of_entry_point(function: Callable[[], Any], program: str) -> tuple[int, str]:
    """The exit status and standard error of an entry point that runs ``function`` through
    :func:`trilab.errors.report_user_errors`, in this process: the cases of one mistake after
    another cost no interpreter start each (one real command-line run per script proves the
    wiring)."""
    from trilab.errors import report_user_errors

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            report_user_errors(function, program=program)
        except SystemExit as exit:
            return int(exit.code), stderr.getvalue()
    return 0, stderr.getvalue()


def _run(
    command: Sequence[str],
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
    timeout: float,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
    )


def user_error_of(
    command: Sequence[str],
    cwd: str | Path | None = None,
    *,
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``command`` as a user would and return its standard error, once it is shown to be a
    user error as every entry point reports one: exit status 2, no traceback, one or two lines.
    """
    done = _run(command, cwd, env, timeout)
    lines = done.stderr.strip().splitlines()
    if done.returncode != 2 or "Traceback" in done.stderr + done.stdout or not 1 <= len(lines) <= 2:
        raise AssertionError(
            f"{shlex.join(map(str, command))}: exit status {done.returncode}, expected a one- or "
            f"two-line user error with status 2; standard error:\n{done.stderr[-3000:]}"
        )
    return done.stderr


def run_to_completion(
    command: Sequence[str],
    cwd: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> str:
    """Run ``command`` (a whole run, e.g. a reference or a resumed one) and return its standard
    error; raises ``AssertionError`` with the end of it unless the command exits 0."""
    done = _run(command, cwd, env, timeout)
    if done.returncode != 0:
        raise AssertionError(
            f"{shlex.join(map(str, command))}: exit status {done.returncode}:\n"
            f"{done.stderr[-3000:]}"
        )
    return done.stderr


class _FillingDisk:
    """A binary file whose disk is full after ``room`` more bytes: ``write`` raises ``code``."""

    def __init__(self, handle: io.BufferedWriter, room: int, code: int) -> None:
        self.handle, self.room, self.code = handle, room, code

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def fileno(self) -> int:
        return self.handle.fileno()

    def __enter__(self) -> _FillingDisk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()


@contextlib.contextmanager
def disk_full_after(
    room: int, *, code: int = errno.ENOSPC, under: str | Path = "/"
) -> Iterator[None]:
    """Within the block, every file opened with ``os.fdopen(fd, "wb")`` (how
    :func:`trilab.atomic.atomic_write` writes) below the folder ``under`` refuses its writes
    with ``code`` once ``room`` bytes are written: a disk that fills up during the write."""
    real = os.fdopen
    under = str(Path(under).resolve())

    def filling(fd, mode="r", *args, **kwargs):
        handle = real(fd, mode, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else ""
        if mode == "wb" and target.startswith(under):
            return _FillingDisk(handle, room, code)
        return handle

    os.fdopen = filling
    try:
        yield
    finally:
        os.fdopen = real


def compose_config(
    config_dir: str | Path, overrides: Iterable[str] = (), config_name: str = "config"
):
    """The configuration ``config_name`` of ``config_dir`` composed with ``overrides`` through
    Hydra's compose API.  Hydra's global state is cleared before and after, so a test that ran
    before or runs after (another compose, an entry point in-process) starts clean."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
