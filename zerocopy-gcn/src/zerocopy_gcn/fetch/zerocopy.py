"""Zero-copy path: pin the host table in place, map it, and gather rows with GPU threads.

``cudaHostRegister`` pins the pages the table already occupies (no copy: a table the size of
host RAM cannot be copied into a pinned buffer) and maps them into the GPU's address space;
``cudaHostGetDevicePointer`` gives the address the kernels read through.  Kernels come from
``kernels/gather.cu`` via ``cupy.RawModule``.

CuPy is imported lazily, only here, so the CPU paths and the tests never need it.
"""

from __future__ import annotations

import threading
import weakref
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import torch

from zerocopy_gcn.fetch.base import FeatureFetcher
from zerocopy_gcn.fetch.reference import choose_word_bytes, launch_geometry

CUDA_HOST_REGISTER_PORTABLE = 0x01
CUDA_HOST_REGISTER_MAPPED = 0x02
CUDA_HOST_REGISTER_READ_ONLY = 0x08
KERNELS = ("naive", "aligned")


class RegistrationError(RuntimeError):
    """A host range could not be registered (overlap with a registered range, bad tensor)."""


def require_cupy():
    """Import CuPy or explain how to get it."""
    try:
        import cupy
    except ImportError as error:  # pragma: no cover - depends on the machine
        raise ImportError(
            "the zerocopy and gpu-kernel paths need CuPy: install it with "
            '`pip install -e "zerocopy-gcn[gpu]"` (CUDA 13 wheels) on a machine with an '
            "NVIDIA GPU, or use fetch=conventional"
        ) from error
    return cupy


def kernel_source() -> str:
    return resources.files("zerocopy_gcn.kernels").joinpath("gather.cu").read_text()


def kernel_path() -> str:
    return str(resources.files("zerocopy_gcn.kernels").joinpath("gather.cu"))


@cache
def _module(device_index: int):
    cupy = require_cupy()
    with cupy.cuda.Device(device_index):
        return cupy.RawModule(code=kernel_source(), options=("--std=c++17",))


class _Registry:
    """Host ranges registered by this process: cudaHostRegister refuses overlaps with an
    opaque error, and unregistering a view would unpin its parent, so we check first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ranges: dict[int, int] = {}  # start -> end

    def claim(self, start: int, end: int) -> None:
        with self.lock:
            for other_start, other_end in self.ranges.items():
                if start < other_end and other_start < end:
                    raise RegistrationError(
                        f"host range [{start:#x}, {end:#x}) overlaps the already registered "
                        f"range [{other_start:#x}, {other_end:#x}); register the whole table "
                        "once and gather from it instead of registering views of it"
                    )
            self.ranges[start] = end

    def release(self, start: int) -> None:
        with self.lock:
            self.ranges.pop(start, None)


REGISTRY = _Registry()


def _default_runtime():
    return require_cupy().cuda.runtime


def _device_pointer(runtime: Any, host_ptr: int) -> int:
    getter = getattr(runtime, "hostGetDevicePointer", None)
    if getter is not None:
        return int(getter(host_ptr, 0))
    import ctypes
    import ctypes.util

    # Older CuPy releases do not wrap cudaHostGetDevicePointer; call libcudart directly.
    library = ctypes.util.find_library("cudart")
    if library is None:
        raise RegistrationError("cannot find libcudart for cudaHostGetDevicePointer")
    cudart = ctypes.CDLL(library)
    device_ptr = ctypes.c_void_p()
    status = cudart.cudaHostGetDevicePointer(ctypes.byref(device_ptr), ctypes.c_void_p(host_ptr), 0)
    if status != 0:
        raise RegistrationError(f"cudaHostGetDevicePointer failed with CUDA error {status}")
    return int(device_ptr.value)


def _unregister(runtime: Any, start: int) -> None:
    try:
        runtime.hostUnregister(start)
    finally:
        REGISTRY.release(start)


class HostRegistration:
    """Pins and maps a contiguous CPU tensor's memory in place; unregisters on close or GC.

    ``read_only``: the memory is a read-only mapping (``np.load(..., mmap_mode="r")``), which
    CUDA can only pin with ``cudaHostRegisterReadOnly``.

    The registration keeps a reference to the tensor so its memory outlives the mapping.
    ``runtime`` defaults to ``cupy.cuda.runtime``; tests pass a stand-in with the same calls.
    """

    def __init__(
        self, tensor: torch.Tensor, runtime: Any | None = None, read_only: bool = False
    ) -> None:
        if tensor.device.type != "cpu":
            raise RegistrationError(f"only host tensors can be registered, got {tensor.device}")
        if not tensor.is_contiguous():
            raise RegistrationError("the table must be contiguous to be registered in place")
        self.runtime = runtime if runtime is not None else _default_runtime()
        self.tensor = tensor
        self.host_ptr = int(tensor.data_ptr())
        self.nbytes = int(tensor.numel() * tensor.element_size())
        if self.nbytes == 0:
            raise RegistrationError("cannot register an empty table")
        REGISTRY.claim(self.host_ptr, self.host_ptr + self.nbytes)
        flags = CUDA_HOST_REGISTER_MAPPED | CUDA_HOST_REGISTER_PORTABLE
        if read_only:
            # read-only file mappings (np.load(mmap_mode="r")) can only be pinned read-only
            flags |= CUDA_HOST_REGISTER_READ_ONLY
        self.flags = flags
        try:
            self.runtime.hostRegister(self.host_ptr, self.nbytes, flags)
        except Exception:
            REGISTRY.release(self.host_ptr)
            raise
        try:
            self.device_ptr = _device_pointer(self.runtime, self.host_ptr)
        except Exception:
            _unregister(self.runtime, self.host_ptr)
            raise
        self._finalizer = weakref.finalize(self, _unregister, self.runtime, self.host_ptr)

    @property
    def registered(self) -> bool:
        return self._finalizer.alive

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> HostRegistration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ZeroCopyFetcher(FeatureFetcher):
    """Gather kernels reading the registered host table directly over PCIe."""

    mode = "zerocopy"

    def __init__(
        self,
        table: torch.Tensor,
        device: torch.device | str = "cuda",
        kernel: str = "aligned",
        vector_loads: bool = True,
        sort_indices: bool = False,
        check_bounds: bool = True,
        max_threads: int = 0,
        read_only: bool = False,
    ) -> None:
        super().__init__(table, device)
        if self.device.type != "cuda":
            raise ValueError("fetch=zerocopy needs a CUDA device (use fetch=conventional on CPU)")
        if kernel not in KERNELS:
            raise ValueError(f"unknown gather kernel {kernel!r}; choose one of {KERNELS}")
        self.cupy = require_cupy()
        self.registration = HostRegistration(table, read_only=read_only)
        self.sort_indices = sort_indices
        self.check_bounds = check_bounds
        self.word_bytes = choose_word_bytes(
            self.row_bytes, self.registration.device_ptr, vector_loads
        )
        self.row_words = self.row_bytes // self.word_bytes
        self.max_threads = int(max_threads)
        self._device_index = (
            self.device.index if self.device.index is not None else torch.cuda.current_device()
        )
        self._kernels: dict[str, Any] = {}
        self.set_kernel(kernel)

    def set_kernel(self, kernel: str) -> None:
        """Switch between the naive and aligned kernels over the same registration (the
        benchmark compares them on one pinned table: two registrations may not overlap)."""
        if kernel not in KERNELS:
            raise ValueError(f"unknown gather kernel {kernel!r}; choose one of {KERNELS}")
        self.kernel_name = f"gather_{kernel}_w{self.word_bytes}"
        if self.kernel_name not in self._kernels:
            self._kernels[self.kernel_name] = _module(self._device_index).get_function(
                self.kernel_name
            )
        self.kernel = self._kernels[self.kernel_name]

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.device, torch.int64, non_blocking=True)
        rows = idx.shape[0]
        out = torch.empty((rows, self.feat_dim), dtype=self.table.dtype, device=self.device)
        if rows == 0:
            return out
        out_rows = None
        if self.sort_indices:  # host-memory locality; rows are written back to request order
            idx, out_rows = torch.sort(idx)
        bad = torch.full((1,), -1, dtype=torch.int64, device=self.device)  # == ULLONG_MAX
        grid, threads, rows_per_block = launch_geometry(
            rows, self.row_words, self.word_bytes, self.max_threads
        )
        stream = torch.cuda.current_stream(self.device)
        with (
            self.cupy.cuda.Device(self._device_index),
            self.cupy.cuda.ExternalStream(stream.cuda_stream),
        ):
            self.kernel(
                (grid,),
                (threads, rows_per_block),
                (
                    np.uint64(self.registration.device_ptr),
                    np.uint64(idx.data_ptr()),
                    np.uint64(0 if out_rows is None else out_rows.data_ptr()),
                    np.uint64(out.data_ptr()),
                    np.int64(rows),
                    np.int64(self.num_rows),
                    np.int64(self.row_words),
                    np.uint64(bad.data_ptr()),
                ),
            )
        if self.check_bounds:
            position = int(bad.item())  # the kernel skipped the bad rows; report the first
            if position != -1:
                raise IndexError(
                    f"feature fetch: node id {int(idx[position])} is out of range "
                    f"[0, {self.num_rows})"
                )
        return out

    def close(self) -> None:
        if getattr(self, "registration", None) is not None:
            torch.cuda.synchronize(self.device)  # no kernel may read the table once unpinned
            self.registration.close()
            self.registration = None


def mapped_cuda_tensor(
    registration: HostRegistration, device: torch.device | str = "cuda"
) -> torch.Tensor:
    """The registered host tensor seen from the GPU (reads go over PCIe), without a copy.

    Used for GPU sampling over a CSR that stays in host memory: torch ops on the returned
    tensor run on the GPU and fetch only the entries they touch.
    """
    cupy = require_cupy()
    host = registration.tensor
    memory = cupy.cuda.UnownedMemory(registration.device_ptr, registration.nbytes, registration)
    array = cupy.ndarray(
        tuple(host.shape),
        dtype=np.dtype(str(host.dtype).split(".")[-1]),
        memptr=cupy.cuda.MemoryPointer(memory, 0),
    )
    return torch.as_tensor(array, device=device)
