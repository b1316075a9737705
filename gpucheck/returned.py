"""What comes back from a lent GPU machine: the files under the folder given with ``--out``.

The device tool returns at most 8 files, each at most 16 MiB, at most 2 folders deep, with names
of letters, digits, ``.``, ``_`` and ``-``; anything else is left behind.  The check writes only
a few files of fixed names (see :data:`REPORT_FILES`), caps the log, and checks the folder
against these limits at the end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_DEPTH = 2  # folders below --out
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
REPORT_FILES = ("{gpu}.md", "{gpu}.json", "{gpu}.log.txt")
LOG_SECTION_BYTES = 1 * 2**20  # the end of each step's output kept in the log


def problems(out: Path) -> list[str]:
    """Why the folder would not come back whole (empty when it would)."""
    found = []
    files = [p for p in sorted(out.rglob("*")) if not p.is_dir()]
    if len(files) > MAX_FILES:
        found.append(f"{len(files)} files (at most {MAX_FILES} come back)")
    for path in files:
        relative = path.relative_to(out)
        if len(relative.parts) - 1 > MAX_DEPTH:
            found.append(f"{relative}: more than {MAX_DEPTH} folders deep")
        if any(not NAME.match(part) for part in relative.parts):
            found.append(f"{relative}: a name outside [A-Za-z0-9._-]")
        if path.is_symlink() or not path.is_file():
            found.append(f"{relative}: not a plain file")
        elif path.stat().st_size > MAX_FILE_BYTES:
            found.append(f"{relative}: over {MAX_FILE_BYTES // 2**20} MiB")
    return found


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole: a run killed mid-write leaves the previous phase's file."""
    temporary = path.with_name(f"{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


def log_text(sections: list[tuple[str, Path]]) -> str:
    """The logs of the tests and steps, each cut to its last ``LOG_SECTION_BYTES``."""
    parts = []
    for title, path in sections:
        if not path.is_file():
            continue
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - LOG_SECTION_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
        cut = (
            f" (last {LOG_SECTION_BYTES // 2**20} MiB of {size / 2**20:.1f} MiB)"
            if size > LOG_SECTION_BYTES
            else ""
        )
        parts.append(f"===== {title}{cut} =====\n{text.rstrip()}\n")
    return "\n".join(parts)
