"""A small benchmark harness: interleaved timing, the machine, and one report in two forms.

Candidates are timed in turns (every round calls each once, the order reversed every other
round), so load from other processes on a shared machine falls on all of them alike and their
ratio stays fair even when absolute times drift.  One column spec renders the Markdown table;
the same rows go to the JSON file, with the command line and the machine beside them.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass
class Timing:
    """Seconds per call of one candidate: wall clock and this process's CPU time."""

    samples: list[float]
    cpu_samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how far one reading can be trusted."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def summary(self, scale: float = 1.0) -> dict[str, Any]:
        """JSON-ready figures; ``scale=1000`` gives milliseconds."""
        return {
            "median": self.median * scale,
            "min": min(self.samples) * scale,
            "max": max(self.samples) * scale,
            "spread": self.spread,
            "samples": [s * scale for s in self.samples],
            "cpu_median": (
                statistics.median(self.cpu_samples) * scale if self.cpu_samples else None
            ),
        }


def cuda_sync(device: Any = None) -> Callable[[], None] | None:
    """The synchronise hook for ``device`` (None where nothing runs asynchronously)."""
    import torch

    kind = getattr(device, "type", device)
    if kind is None:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if str(kind).startswith("cuda") and torch.cuda.is_available():
        return lambda: torch.cuda.synchronize(device)
    return None


def interleaved(
    candidates: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] | None = time.process_time,
    alternate: bool = True,
) -> dict[str, Timing]:
    """Time every candidate ``repeats`` times in turns after ``warmup`` untimed rounds.

    ``sync`` runs before the clock starts and before it stops, so queued device work is counted
    in the call that queued it.  ``alternate`` reverses the order every other round: a call
    that warms caches for the next one then favours each candidate equally often.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(candidates)
    timings = {name: Timing([], []) for name in names}
    for index in range(warmup + repeats):
        order = names[::-1] if alternate and index % 2 else names
        for name in order:
            if sync is not None:
                sync()
            cpu_start = cpu_clock() if cpu_clock is not None else 0.0
            start = clock()
            candidates[name]()
            if sync is not None:
                sync()
            seconds = clock() - start
            cpu_seconds = cpu_clock() - cpu_start if cpu_clock is not None else None
            if index >= warmup:
                timings[name].samples.append(seconds)
                if cpu_seconds is not None:
                    timings[name].cpu_samples.append(cpu_seconds)
    return timings


def ratios(
    values: Mapping[str, float], peer: str, higher_is_better: bool = False
) -> dict[str, float]:
    """How many times better each candidate is than ``peer`` (>1: better).  With times
    (lower is better) that is peer / own; with rates, own / peer."""
    base = values[peer]
    return {
        name: (value / base if higher_is_better else base / value) for name, value in values.items()
    }


def add_ratio(
    rows: Sequence[dict],
    key: str,
    peer: str,
    by: str,
    out: str,
    group: Sequence[str] = (),
    higher_is_better: bool = False,
) -> Sequence[dict]:
    """Store in each row ``out`` = its ``key`` against that of the row of its group (rows equal
    in every ``group`` field) whose ``by`` field is ``peer``; None where the group has no peer."""
    peers = {tuple(r.get(g) for g in group): r[key] for r in rows if r.get(by) == peer}
    for row in rows:
        base = peers.get(tuple(row.get(g) for g in group))
        value = row.get(key)
        ok = base is not None and value is not None and (base if higher_is_better else value)
        row[out] = (value / base if higher_is_better else base / value) if ok else None
    return rows


def machine() -> dict[str, Any]:
    """What the figures were taken on: CPU, usable cores, load, library versions, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    except OSError:
        pass
    # affinity, not the machine's count: a job pinned to 2 of 16 cores gets 2
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1_5_15min": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for module in ("numpy", "torch"):
        try:
            info[module] = importlib.import_module(module).__version__
        except ImportError:
            pass
    if "torch" in info:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
            info["gpu_count"] = torch.cuda.device_count()
            info["cuda"] = torch.version.cuda
    return info


def describe(info: Mapping[str, Any]) -> str:
    """One line for a report's heading: the GPU where there is one, else the CPU."""
    threads = f", torch threads: {info['torch_threads']}" if "torch_threads" in info else ""
    load = info.get("load_average_1_5_15min")
    load_text = f", load {load[2]:.1f} (15 min)" if load else ""
    cpu = f"{info['cpu']}, {info['usable_cores']} of {info['cores']} cores{threads}{load_text}"
    return f"{info['gpu']} (host: {cpu})" if info.get("gpu") else cpu


def command_line(argv: Sequence[str] | None = None, script: str | Path | None = None) -> str:
    """This run's command as one shell line, ``python <script> <arguments>``, the script's path
    relative to the working directory (``argv`` defaults to this process's arguments)."""
    path = Path(script if script is not None else sys.argv[0]).resolve()
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(path), *(sys.argv[1:] if argv is None else argv)])


def load_script(path: str | Path, name: str | None = None) -> ModuleType:
    """Import a benchmark script by its path, as ``<project>_<folder>_<stem>`` by default so
    that scripts of the same name in two projects can be imported by one test session."""
    path = Path(path).resolve()
    name = name or f"{path.parents[1].name}_{path.parent.name}_{path.stem}".replace("-", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@dataclass(frozen=True)
class Column:
    """One table column: ``title`` (``{field}``s filled from the first row), the row's ``key``
    or a ``value(row)`` function, and ``fmt`` (a format string or a function to text)."""

    title: str
    key: str | None = None
    fmt: str | Callable[[Any], str] = "{}"
    value: Callable[[Mapping[str, Any]], Any] | None = None
    missing: str = "–"

    def cell(self, row: Mapping[str, Any]) -> str:
        value = self.value(row) if self.value is not None else row.get(self.key)
        if value is None:
            return self.missing
        text = self.fmt(value) if callable(self.fmt) else self.fmt.format(value)
        return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[str]:
    first = rows[0] if rows else {}
    titles = []
    for column in columns:
        try:
            titles.append(column.title.format(**first))
        except (KeyError, IndexError, ValueError):
            titles.append(column.title)
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.cell(row) for c in columns) + " |" for row in rows]
    return lines


def write_report(
    stem: str | Path,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    title: str,
    command: str | None = None,
    info: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (rows, command, machine, notes, ``extra``) and ``<stem>.md`` (title,
    command, machine, the table, the notes as paragraphs).  Returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    command = command or command_line()
    info = dict(info) if info is not None else machine()
    notes = list(notes)
    payload = {
        "title": title,
        "command": command,
        "machine": info,
        "notes": notes,
        **(extra or {}),
        "rows": list(rows),
    }
    json_path = stem.with_name(stem.name + ".json")
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe(info)}",
        "",
        *markdown_table(rows, columns),
    ]
    for note in notes:
        lines += ["", note]
    md_path = stem.with_name(stem.name + ".md")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def read_report(stem: str | Path) -> dict[str, Any]:
    stem = Path(stem)
    return json.loads(stem.with_name(stem.name + ".json").read_text())
