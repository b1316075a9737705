"""A graph folder is built under a hidden sibling name and appears only when complete."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trilab.errors import REFUSED_BY_SYSTEM, UserError
from zerocopy_gcn.graph.csr import GraphFormatError, GraphWriteError

# the system's refusals the user fixes (space, quota, permissions: trilab's set), and a file
# in the way of the output folder or of its parent
_REFUSED_OR_IN_THE_WAY = REFUSED_BY_SYSTEM | {errno.ENOTDIR, errno.EEXIST}


def _write_error(out: Path, partial: Path, error: OSError) -> UserError:
    reason = error.strerror or str(error)
    filename = str(error.filename) if error.filename else None
    if filename and not filename.startswith(str(partial)) and not str(out).startswith(filename):
        return GraphWriteError(f"{filename}: {reason}")  # an input, not the output
    return GraphWriteError(
        f"{out}: cannot write the graph folder: {reason}; nothing was kept "
        "(free space or choose a writable folder)"
    )


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Build a graph folder under a hidden sibling name and move it to ``out`` only when it is
    complete, so that a failed conversion (bad input, full disk, Ctrl-C) leaves no half-written
    folder behind that a later run could mistake for a graph.  Write failures the user can fix
    (full disk, read-only folder) become one-line :class:`GraphWriteError` messages."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GraphFormatError(
            f"{out}: already exists and is not empty; remove it or choose another output folder"
        )
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    except OSError as error:
        if error.errno not in _REFUSED_OR_IN_THE_WAY:
            raise
        raise _write_error(out, partial, error) from error
    try:
        yield partial
        if out.exists():
            out.rmdir()  # empty (checked above)
        partial.rename(out)
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if error.errno not in _REFUSED_OR_IN_THE_WAY:
            raise
        raise _write_error(out, partial, error) from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
