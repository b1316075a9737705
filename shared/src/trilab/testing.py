"""Test support shared by the three projects' test suites.

Installed with ``trilab`` so each project's tests import one copy; it imports neither pytest nor
anything a product module does not already depend on.

- :class:`RunsCodeWhenUnpickled`, :func:`write_crafted_torch_file`, :func:`write_crafted_npz`: a
  "pickle that runs code", for the tests that prove a loader refuses it before it runs.
- :class:`RecordingLogger`: a stand-in for :class:`trilab.runlog.RunLogger` that keeps what it
  was told, for tests that assert on what a function logs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
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
