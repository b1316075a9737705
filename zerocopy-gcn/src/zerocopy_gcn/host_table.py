"""Where the graph's large host arrays live while training: ``host_table=mmap|shm``.

``mmap`` (default): the graph folder's own read-only memory maps.  Processes on one machine
that open the same folder share its pages through the page cache.

``shm``: one copy per machine in POSIX shared memory.  Local rank 0 copies ``feat``,
``indptr`` and ``indices`` into files under ``/dev/shm`` (tmpfs, i.e. RAM); every process on
the machine maps those files; once all have mapped them the names are removed, so nothing is
left behind when the run ends or dies later.  Each process then pins *its own* mapping of the
shared pages with ``cudaHostRegister`` (``fetch=zerocopy``, ``sample_on=mapped``), as CUDA
requires one registration per process.  Why not pin the file's page cache directly: recent
Linux kernels refuse long-term pins of writable shared file mappings, other filesystems
(network, FUSE) may refuse any, and page-cache pages can be evicted until they are pinned;
shared-memory pages are ordinary anonymous RAM and always pinnable.  The price is one copy of
the arrays per machine, made at start-up.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch.distributed as dist

from trilab.distributed import DistContext
from trilab.errors import UserError
from zerocopy_gcn.graph.csr import CSRGraph

HOST_TABLES = ("mmap", "shm")
SHARED_ARRAYS = ("feat", "indptr", "indices")
SHM_ROOT = Path("/dev/shm")
_COPY_CHUNK_BYTES = 256 << 20  # bounded temporary memory while copying a huge memory map


class HostTableError(UserError, RuntimeError):
    """The shared-memory copy could not be made (space, permissions); says what to change."""


def _segment_prefix(ctx: DistContext) -> str:
    """A name every rank agrees on: rank 0 draws it and broadcasts it."""
    names = [f"zerocopy-gcn-{uuid.uuid4().hex[:16]}"]
    if ctx.is_distributed:
        dist.broadcast_object_list(names, src=0)
    return names[0]


def _segment_path(root: Path, prefix: str, name: str) -> Path:
    return root / f"{prefix}-{name}.bin"


def _check_space(root: Path, needed: int) -> None:
    if not root.is_dir():
        raise HostTableError(
            f"host_table=shm: {root} does not exist (POSIX shared memory is "
            "needed; use host_table=mmap on this system)"
        )
    free = shutil.disk_usage(root).free
    if free < needed:
        raise HostTableError(
            f"host_table=shm: the graph arrays need {needed / 2**30:.2f} GiB in {root} but only "
            f"{free / 2**30:.2f} GiB are free (in a container, raise it with "
            "`docker run --shm-size=...`); or use host_table=mmap"
        )


def copy_into(array: np.ndarray, path: Path) -> None:
    """Write ``array`` to a new raw file at ``path`` in bounded chunks."""
    target = np.memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    rows_per_chunk = max(_COPY_CHUNK_BYTES // max(array[:1].nbytes, 1), 1)
    for begin in range(0, array.shape[0], rows_per_chunk):
        target[begin : begin + rows_per_chunk] = array[begin : begin + rows_per_chunk]
    target.flush()
    del target


def _agree(ctx: DistContext, error: str | None) -> None:
    """A barrier that also fails on every rank when any rank failed (no rank left waiting)."""
    errors = [error]
    if ctx.is_distributed:
        errors = [None] * ctx.world_size
        dist.all_gather_object(errors, error)
    failed = [f"rank {rank}: {message}" for rank, message in enumerate(errors) if message]
    if failed:
        raise HostTableError("; ".join(failed))


def share_graph_arrays(
    graph: CSRGraph, ctx: DistContext, root: Path = SHM_ROOT, names: tuple[str, ...] = SHARED_ARRAYS
) -> tuple[CSRGraph, dict]:
    """The graph with ``names`` replaced by maps of one shared copy per machine.

    Collective: every rank of ``ctx`` must call it.  Returns the graph and, per array, the
    identity of the memory it maps (its former path, device, inode, bytes), equal on all ranks of
    a machine.
    """
    root = Path(root)
    prefix = _segment_prefix(ctx)
    arrays = {name: getattr(graph, name) for name in names if getattr(graph, name).nbytes > 0}
    paths = {name: _segment_path(root, prefix, name) for name in arrays}
    creator = ctx.local_rank == 0
    error = None
    if creator:
        try:
            _check_space(root, sum(array.nbytes for array in arrays.values()))
            for name, array in arrays.items():
                copy_into(array, paths[name])
        except (OSError, HostTableError) as failure:
            error = str(failure)
    try:
        _agree(ctx, error)
        mapped, identity = {}, {}
        try:
            for name, array in arrays.items():
                # Writable on purpose: the copy belongs to this run alone, and a writable
                # mapping pins without cudaHostRegisterReadOnly, which not every GPU supports.
                mapped[name] = np.memmap(
                    paths[name], mode="r+", dtype=array.dtype, shape=array.shape
                )
                status = os.stat(paths[name])
                identity[name] = {
                    "path": str(paths[name]),  # unlinked once every rank maps it
                    "device": status.st_dev,
                    "inode": status.st_ino,
                    "bytes": int(array.nbytes),
                }
        except OSError as failure:
            error = f"cannot map the shared copy: {failure}"
        _agree(ctx, error)  # every process has mapped every array: the names can go
    finally:
        if creator:
            for path in paths.values():
                path.unlink(missing_ok=True)
    return dataclasses.replace(graph, **mapped), identity
