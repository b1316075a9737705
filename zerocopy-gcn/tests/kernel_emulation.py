"""Run the real CUDA gather kernels on the CPU, so the tests check them without a GPU.

``kernels/cpu_emulation.cpp`` includes ``gather.cu`` with CUDA's built-ins replaced by plain
C++ and executes every simulated thread in turn (valid because the kernels never synchronise or
share memory), logging each host read.  The launch geometry and word choice are the zero-copy
fetcher's own (:func:`launch_geometry`, :func:`choose_word_bytes`), so this exercises the same
code path minus the CUDA runtime.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from zerocopy_gcn.fetch.reference import choose_word_bytes, launch_geometry

KERNEL_INDEX = {
    ("naive", 2): 0,
    ("naive", 4): 1,
    ("naive", 16): 2,
    ("aligned", 2): 3,
    ("aligned", 4): 4,
    ("aligned", 16): 5,
}
ULLONG_MAX_AS_INT64 = -1


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def build_emulator(build_dir: str | Path) -> ctypes.CDLL:
    """Compile the emulator into ``build_dir`` (needs a C++ compiler) and load it."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++/c++/clang++) to build the kernel emulator")
    kernels = resources.files("zerocopy_gcn.kernels")
    library = Path(build_dir) / "libgather_emu.so"
    result = subprocess.run(
        [
            cxx,
            "-O1",
            "-shared",
            "-fPIC",
            "-I",
            str(kernels),
            "-o",
            str(library),
            str(kernels.joinpath("cpu_emulation.cpp")),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the kernel emulator failed:\n{result.stderr}")
    lib = ctypes.CDLL(str(library))
    lib.emulate_gather.restype = ctypes.c_longlong
    lib.emulate_gather.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_longlong,
        ctypes.c_longlong,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_longlong,
    ]
    return lib


@dataclass
class EmulatedGather:
    out: torch.Tensor
    bad_position: int | None  # first out-of-range position flagged by the kernel
    loads: np.ndarray  # [n, 5]: address, block, threadIdx.y, threadIdx.x, i
    word_bytes: int
    threads: int
    rows_per_block: int
    grid: int


def emulate_gather(
    lib: ctypes.CDLL,
    table: torch.Tensor,
    idx: torch.Tensor,
    kernel: str = "aligned",
    vector_loads: bool = True,
    sort_indices: bool = False,
    max_threads: int = 0,
) -> EmulatedGather:
    """``ZeroCopyFetcher._fetch`` with the kernel run by the emulator instead of a GPU."""
    table = table.contiguous()
    n_rows, width = table.shape
    row_bytes = width * table.element_size()
    word = choose_word_bytes(row_bytes, table.data_ptr(), vector_loads)
    row_words = row_bytes // word
    idx = idx.to(torch.int64).contiguous()
    out_rows = None
    if sort_indices:
        idx, out_rows = torch.sort(idx)
        out_rows = out_rows.contiguous()
    n = idx.shape[0]
    out = torch.zeros((n, width), dtype=table.dtype)
    bad = torch.full((1,), ULLONG_MAX_AS_INT64, dtype=torch.int64)
    grid, threads, rows_per_block = launch_geometry(n, row_words, word, max_threads)
    capacity = max(1, n * row_words + 16)
    log = np.zeros((capacity, 5), dtype=np.int64)
    count = lib.emulate_gather(
        KERNEL_INDEX[(kernel, word)],
        table.data_ptr(),
        idx.data_ptr(),
        None if out_rows is None else out_rows.data_ptr(),
        out.data_ptr(),
        n,
        n_rows,
        row_words,
        bad.data_ptr(),
        grid,
        threads,
        rows_per_block,
        log.ctypes.data,
        capacity,
    )
    if count > capacity:
        raise AssertionError(f"kernel issued {count} loads for {n * row_words} words")
    position = int(bad.item())
    return EmulatedGather(
        out,
        None if position == ULLONG_MAX_AS_INT64 else position,
        log[:count],
        word,
        threads,
        rows_per_block,
        grid,
    )
