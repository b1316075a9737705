"""Opening a graph folder for the PyG stores: a path or an opened graph, one error form."""

from __future__ import annotations

from pathlib import Path

from zerocopy_gcn.graph.csr import CSRGraph, GraphFormatError, load_graph


def open_folder(folder: str | Path | CSRGraph, validate: str) -> CSRGraph:
    """``folder`` opened (memory-mapped) and checked; a :class:`CSRGraph` is used as given.

    A path that is not a graph folder raises :class:`GraphFormatError` (a ``UserError``: one
    line naming the folder and what is wrong with it), never a NumPy or OS traceback.
    """
    if isinstance(folder, CSRGraph):
        return folder
    path = Path(folder)
    if not path.is_dir():
        raise GraphFormatError(
            f"{path}: not a folder; a graph folder is written by "
            "`python -m zerocopy_gcn.graph.convert`"
        )
    try:
        return load_graph(path, validate=validate)
    except OSError as error:  # unreadable files (permissions): name the file
        raise GraphFormatError(
            f"{error.filename or path}: cannot be read: {error.strerror or error}"
        ) from error
