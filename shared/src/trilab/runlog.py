"""Run logging: console, a ``run.log`` file, TensorBoard and a JSON-lines file of every scalar.

One :class:`RunLogger` per run.  In distributed runs only rank 0 should pass ``enabled=True``;
the others get a logger that accepts every call and writes nothing, so calling code needs no
``if rank == 0`` branches.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from trilab.atomic import atomic_write_text
from trilab.run_files import LOG_FILE, METRICS_FILE, SCALARS_FILE, TENSORBOARD_DIR

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, paths and nested containers into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays/scalars and torch tensors
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible instead of failing
    return value


class RunLogger:
    """Console + file + TensorBoard + JSONL logging for one run directory."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        name: str = "trilab",
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._logger = logging.getLogger(f"{name}.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handlers: list[logging.Handler] = []
        self._writer = None
        self._scalars_file = None
        if not enabled:
            self._logger.addHandler(logging.NullHandler())
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        for handler in (logging.StreamHandler(), logging.FileHandler(self.run_dir / LOG_FILE)):
            handler.setFormatter(formatter)
            self._logger.addHandler(handler)
            self._handlers.append(handler)
        self._scalars_file = open(self.run_dir / SCALARS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR))

    def info(self, message: str) -> None:
        self._logger.info(message)

    def warning(self, message: str) -> None:
        self._logger.warning(message)

    def log_scalars(self, scalars: Mapping[str, Any], step: int) -> None:
        """Record scalars at ``step`` in TensorBoard and as one line of ``scalars.jsonl``."""
        if not self.enabled:
            return
        values = {tag: float(to_jsonable(v)) for tag, v in scalars.items()}
        if self._writer is not None:
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, step)
        record = {"step": int(step), "time": time.time(), **to_jsonable(values)}
        self._scalars_file.write(json.dumps(record) + "\n")
        self._scalars_file.flush()

    def progress(
        self, iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False
    ) -> Iterator[T]:
        """Iterate with a tqdm bar; silent when the logger is disabled (non-zero ranks)."""
        return iter(
            tqdm(
                iterable,
                desc=desc,
                total=total,
                leave=leave,
                disable=not self.enabled,
                dynamic_ncols=True,
            )
        )

    def write_metrics(self, metrics: Mapping[str, Any], filename: str = METRICS_FILE) -> Path:
        """Write the run's final metrics atomically as JSON in the run directory."""
        path = self.run_dir / filename
        if self.enabled:
            atomic_write_text(path, json.dumps(to_jsonable(metrics), indent=2, sort_keys=True))
            self.info(f"metrics written to {path}")
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._scalars_file is not None:
            self._scalars_file.close()
            self._scalars_file = None
        for handler in self._handlers:
            self._logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_scalars(run_dir: str | Path) -> list[dict[str, Any]]:
    """Read back every record of a run's ``scalars.jsonl`` (for plots and tests)."""
    path = Path(run_dir) / SCALARS_FILE
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
