"""``nvidia-smi --query-gpu`` in CSV form: what the check reads about the GPU and its PCIe link.

``nvidia-smi --query-gpu=index,name,... --format=csv`` prints a header line of the field names
(with units in brackets, e.g. ``memory.total [MiB]``), then one line per GPU, fields separated
by ", "; values carry their unit (``81559 MiB``) and unavailable ones read ``[N/A]`` or
``[Not Supported]``.  The PCIe generation of an idle GPU is often below its maximum (the link
trains down to save power), so both the current and the maximum are reported.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from typing import Any

FIELDS = (
    "index",
    "name",
    "memory.total",
    "driver_version",
    "pcie.link.gen.current",
    "pcie.link.gen.max",
    "pcie.link.width.current",
    "pcie.link.width.max",
)
UNAVAILABLE = ("[N/A]", "[Not Supported]", "N/A", "[Unknown Error]", "[Insufficient Permissions]")


def _value(text: str) -> Any:
    text = text.strip()
    if text in UNAVAILABLE:
        return None
    number = text.split(" ")[0]  # "81559 MiB" -> 81559
    try:
        return int(number)
    except ValueError:
        try:
            return float(number)
        except ValueError:
            return text


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Rows of ``--format=csv`` output as dicts keyed by field name (units stripped)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    reader = csv.reader(lines, skipinitialspace=True)
    header = [name.split(" [")[0].strip() for name in next(reader)]
    rows = []
    for values in reader:
        if len(values) != len(header):
            raise ValueError(
                f"nvidia-smi line has {len(values)} fields, header has {len(header)}: {values}"
            )
        rows.append({name: _value(value) for name, value in zip(header, values, strict=True)})
    return rows


def query(run=subprocess.run) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, None) or ([], why not): nvidia-smi may be absent (containers) or refuse a field."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return [], "nvidia-smi not found"
    try:
        done = run(
            [executable, f"--query-gpu={','.join(FIELDS)}", "--format=csv"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"nvidia-smi failed: {error}"
    if done.returncode != 0:
        return [], f"nvidia-smi failed: {(done.stdout + done.stderr).strip()[:200]}"
    try:
        return parse_csv(done.stdout), None
    except ValueError as error:
        return [], f"nvidia-smi output not understood: {error}"


def pcie_text(row: dict[str, Any]) -> str:
    """e.g. 'PCIe Gen5 x16 (max Gen5 x16)'."""

    def show(value: Any) -> str:
        return "?" if value is None else str(value)

    return (
        f"PCIe Gen{show(row.get('pcie.link.gen.current'))} "
        f"x{show(row.get('pcie.link.width.current'))} (max Gen"
        f"{show(row.get('pcie.link.gen.max'))} x{show(row.get('pcie.link.width.max'))})"
    )
