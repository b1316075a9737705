"""Page-cache control for honest first-epoch figures: evict a folder's files, measure residency.

A graph folder that was just generated or validated sits in the page cache, so a first epoch
run right after it reads memory, not disk.  ``evict`` asks the kernel to drop the clean cached
pages of each file (``posix_fadvise(DONTNEED)``: no root needed; pages mapped by a live process
stay), and ``resident_fraction`` says with ``mincore`` how much of a file is cached, so a report
can state what its "cold" epoch really started from.

``EvictGraphFiles`` is a Hydra callback doing both before every job of a run or multirun over
a graph folder (``data=folder``): ``epoch_variants.py`` adds it with
``+hydra.callbacks.page_cache._target_=pagecache.EvictGraphFiles`` and this folder on
``PYTHONPATH``; it writes what it did to ``page_cache.json`` in the job's folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback

_PAGE = mmap.PAGESIZE


def evict(paths: list[Path]) -> bool:
    """Drop the cached pages of ``paths``; False where the platform has no posix_fadvise."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:  # pragma: no cover - not Linux
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                os.fdatasync(fd)  # dirty pages cannot be dropped; written-back ones can
            except OSError:
                pass
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def _libc():
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    libc.mincore.restype = ctypes.c_int
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mmap.restype = ctypes.c_void_p
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def resident_fraction(path: Path) -> float | None:
    """Fraction of ``path``'s pages in the page cache (None where mincore is unavailable)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    libc = _libc()
    if libc is None:  # pragma: no cover
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            pages = (size + _PAGE - 1) // _PAGE
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                return None
            return float((np.frombuffer(vector, dtype=np.uint8) & 1).sum()) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def graph_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.npy"))


class EvictGraphFiles(Callback):
    """Before each job: the files of its graph folder evicted, the features' residency noted.

    A generated preset (``data.kind=preset``) is left alone: training generates or validates
    it after this hook, which reads it back into the cache anyway."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.utils import to_absolute_path

        record: dict[str, Any] = {"evicted": False, "feat_resident_fraction": None}
        if config.data.kind == "folder":
            folder = Path(to_absolute_path(str(config.data.path)))
            files = graph_files(folder)
            feat = folder / "feat.npy"
            record = {
                "folder": str(folder),
                "files": len(files),
                "evicted": evict(files),
                "feat_resident_fraction": resident_fraction(feat) if feat.is_file() else None,
            }
        out = Path(config.hydra.runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "page_cache.json").write_text(json.dumps(record, indent=2))
