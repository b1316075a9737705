"""Zero-copy path: pin the host table in place, map it, and gather rows with GPU threads.

``cudaHostRegister`` pins the pages the table already occupies (no copy: a table the size of
host RAM cannot be copied into a pinned buffer) and maps them into the GPU's address space; the
kernels read through the host pointer itself where the GPU allows it, else through the alias
``cudaPointerGetAttributes`` gives.  Kernels come from ``kernels/gather.cu`` via
``cupy.RawModule``.  Every ``cupy.cuda.runtime`` name used here exists in CuPy 14 (a test checks
them against the module's list).

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

from trilab.errors import UserError
from zerocopy_gcn.fetch.base import BoundsCheck, FeatureFetcher
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


class ReadOnlyRegistrationUnsupported(UserError, RegistrationError):
    """The GPU cannot pin read-only host memory; the user can choose a writable host table."""


def _device_attribute(runtime: Any, name: str, device_index: int) -> int:
    return int(runtime.deviceGetAttribute(getattr(runtime, name), device_index))


def _device_pointer(runtime: Any, host_ptr: int, device_index: int) -> int:
    """The address GPU code uses for registered host memory at ``host_ptr``.

    Where the device can use the host pointer for registered memory (unified addressing on
    64-bit Linux, every GPU this project targets) that is the host pointer itself; otherwise
    ``cudaPointerGetAttributes`` gives the device alias.  CuPy wraps both calls; it does not wrap
    ``cudaHostGetDevicePointer``, and loading a libcudart of our own could load a second,
    different runtime beside the one CuPy and torch bring.
    """
    if _device_attribute(runtime, "cudaDevAttrCanUseHostPointerForRegisteredMem", device_index):
        return host_ptr
    device_ptr = int(runtime.pointerGetAttributes(host_ptr).devicePointer)
    if device_ptr == 0:
        raise RegistrationError(
            f"cudaPointerGetAttributes gave no device address for the registered range at "
            f"{host_ptr:#x}; the GPU cannot map host memory"
        )
    return device_ptr


def _unregister(runtime: Any, start: int) -> None:
    """Unpin a range once no queued kernel can still read it (kernels are asynchronous)."""
    try:
        try:
            runtime.deviceSynchronize()
        finally:
            runtime.hostUnregister(start)
    finally:
        REGISTRY.release(start)


class HostRegistration:
    """Pins and maps a contiguous CPU tensor's memory in place; unregisters on close or GC.

    ``read_only``: the memory is a read-only mapping (``np.load(..., mmap_mode="r")``), which
    CUDA can only pin with ``cudaHostRegisterReadOnly``; where the GPU lacks that
    (``cudaDevAttrHostRegisterReadOnlySupported`` = 0) the error says to use ``host_table=shm``.

    The registration keeps a reference to the tensor so its memory outlives the mapping;
    ``close()`` waits for the device, then unpins; it may be called any number of times.
    ``runtime`` defaults to ``cupy.cuda.runtime``; tests pass a stand-in offering the same names.
    """

    def __init__(
        self,
        tensor: torch.Tensor,
        runtime: Any | None = None,
        read_only: bool = False,
        device_index: int | None = None,
    ) -> None:
        if tensor.device.type != "cpu":
            raise RegistrationError(f"only host tensors can be registered, got {tensor.device}")
        if not tensor.is_contiguous():
            raise RegistrationError("the table must be contiguous to be registered in place")
        self.runtime = runtime if runtime is not None else _default_runtime()
        self.device_index = self.runtime.getDevice() if device_index is None else device_index
        self.tensor = tensor
        self.host_ptr = int(tensor.data_ptr())
        self.nbytes = int(tensor.numel() * tensor.element_size())
        if self.nbytes == 0:
            raise RegistrationError("cannot register an empty table")
        flags = CUDA_HOST_REGISTER_MAPPED | CUDA_HOST_REGISTER_PORTABLE
        if read_only:
            if not _device_attribute(
                self.runtime, "cudaDevAttrHostRegisterReadOnlySupported", self.device_index
            ):
                raise ReadOnlyRegistrationUnsupported(
                    f"GPU {self.device_index} cannot pin read-only memory maps "
                    "(cudaDevAttrHostRegisterReadOnlySupported = 0): use host_table=shm, "
                    "which pins a writable shared-memory copy"
                )
            flags |= CUDA_HOST_REGISTER_READ_ONLY
        self.flags = flags
        REGISTRY.claim(self.host_ptr, self.host_ptr + self.nbytes)
        try:
            self.runtime.hostRegister(self.host_ptr, self.nbytes, flags)
        except Exception:
            REGISTRY.release(self.host_ptr)
            raise
        try:
            self.device_ptr = _device_pointer(self.runtime, self.host_ptr, self.device_index)
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


class _StreamHandle:
    """A stream handle offering the CUDA stream protocol (``__cuda_stream__``), which
    ``cupy.cuda.Stream.from_external`` takes; torch's streams offer it only in recent releases."""

    def __init__(self, handle: int) -> None:
        self.handle = int(handle)

    def __cuda_stream__(self) -> tuple[int, int]:  # noqa: PLW3201 - the protocol's name
        return (0, self.handle)


class CupyLauncher:
    """Compiles and launches the gather kernels with CuPy on torch's current stream."""

    def __init__(self, device: torch.device) -> None:
        self.cupy = require_cupy()
        self.runtime = self.cupy.cuda.runtime
        self.device_index = (
            device.index if device.index is not None else torch.cuda.current_device()
        )

    def kernel(self, name: str) -> Any:
        return _module(self.device_index).get_function(name)

    def launch(self, kernel: Any, grid: int, block: tuple[int, int], args: tuple) -> None:
        handle = torch.cuda.current_stream(self.device_index).cuda_stream
        stream = self.cupy.cuda.Stream.from_external(_StreamHandle(handle))
        with self.cupy.cuda.Device(self.device_index), stream:
            kernel((grid,), block, args)


class KernelBoundsFlag:
    """The kernel's "first out-of-range position" flag, copied to pinned host memory on the
    stream that wrote it, without waiting; calling it (once that stream's work is done) raises
    ``IndexError`` naming the id, so only the rare failing fetch reads device memory again."""

    def __init__(self, bad: torch.Tensor, idx: torch.Tensor, num_rows: int) -> None:
        if bad.is_cuda:
            self.flag = torch.empty(1, dtype=torch.int64, pin_memory=True)
            self.flag.copy_(bad, non_blocking=True)
        else:
            self.flag = bad
        self.idx = idx
        self.num_rows = num_rows

    def __call__(self) -> None:
        position = int(self.flag[0])
        if position != -1:  # the kernel skipped the bad rows; report the first
            raise IndexError(
                f"feature fetch: node id {int(self.idx[position])} is out of range "
                f"[0, {self.num_rows})"
            )


class ZeroCopyFetcher(FeatureFetcher):
    """Gather kernels reading the registered host table directly over PCIe.

    ``check_bounds=True``: an out-of-range id raises ``IndexError`` after the kernel (one
    device-to-host read of a flag per fetch).  ``check_bounds=False`` skips that read: the
    kernel still never dereferences an out-of-range id, but the output rows it stands for are
    left uninitialised (whatever the allocator's memory held), and no error is raised.

    ``launcher`` defaults to CuPy on ``device`` and ``runtime`` to ``cupy.cuda.runtime``; tests
    pass stand-ins (a CPU emulation of the kernels and a fake runtime).
    """

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
        runtime: Any | None = None,
        launcher: Any | None = None,
    ) -> None:
        super().__init__(table, device)
        self.registration: HostRegistration | None = None
        if launcher is None and self.device.type != "cuda":
            raise ValueError("fetch=zerocopy needs a CUDA device (use fetch=conventional on CPU)")
        if kernel not in KERNELS:
            raise ValueError(f"unknown gather kernel {kernel!r}; choose one of {KERNELS}")
        self.launcher = launcher if launcher is not None else CupyLauncher(self.device)
        self.registration = HostRegistration(
            table,
            runtime=runtime if runtime is not None else self.launcher.runtime,
            read_only=read_only,
            device_index=self.launcher.device_index,
        )
        try:  # a failure from here on must not leave the table pinned (and claimed)
            self.sort_indices = sort_indices
            self.check_bounds = check_bounds
            self.word_bytes = choose_word_bytes(
                self.row_bytes, self.registration.device_ptr, vector_loads
            )
            self.row_words = self.row_bytes // self.word_bytes
            self.max_threads = int(max_threads)
            self._kernels: dict[str, Any] = {}
            self.set_kernel(kernel)
        except BaseException:
            self.close()
            raise

    def set_kernel(self, kernel: str) -> None:
        """Switch between the naive and aligned kernels over the same registration (the
        benchmark compares them on one pinned table: two registrations may not overlap)."""
        if kernel not in KERNELS:
            raise ValueError(f"unknown gather kernel {kernel!r}; choose one of {KERNELS}")
        self.kernel_name = f"gather_{kernel}_w{self.word_bytes}"
        if self.kernel_name not in self._kernels:
            self._kernels[self.kernel_name] = self.launcher.kernel(self.kernel_name)
        self.kernel = self._kernels[self.kernel_name]

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        out, check = self._gather(idx)
        if check is not None:
            if out.is_cuda:
                torch.cuda.current_stream(self.device).synchronize()
            check()
        return out

    def fetch_deferred(self, idx: torch.Tensor) -> tuple[torch.Tensor, BoundsCheck | None]:
        out, check = self._gather(idx.reshape(-1).long())
        return self._count(out), check

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, BoundsCheck | None]:
        """Queue the gather kernel; the bounds check to run once it has finished, if any."""
        if self.registration is None:
            raise RuntimeError("this zero-copy fetcher is closed")
        # The kernel reads idx.data_ptr() as a dense array: a strided view (ids[::2]) must be
        # made contiguous, or it would gather the wrong rows without any error.
        idx = idx.to(self.device, torch.int64, non_blocking=True).contiguous()
        rows = idx.shape[0]
        out = torch.empty((rows, self.feat_dim), dtype=self.table.dtype, device=self.device)
        if rows == 0:
            return out, None
        out_rows = None
        if self.sort_indices:  # host-memory locality; rows are written back to request order
            idx, out_rows = torch.sort(idx)
            idx, out_rows = idx.contiguous(), out_rows.contiguous()
        bad = torch.full((1,), -1, dtype=torch.int64, device=self.device)  # == ULLONG_MAX
        grid, threads, rows_per_block = launch_geometry(
            rows, self.row_words, self.word_bytes, self.max_threads
        )
        self.launcher.launch(
            self.kernel,
            grid,
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
        if not self.check_bounds:
            return out, None
        return out, KernelBoundsFlag(bad, idx, self.num_rows)

    def close(self) -> None:
        """Unpin the table once the device has finished every kernel; safe to call twice."""
        registration, self.registration = getattr(self, "registration", None), None
        if registration is not None:
            registration.close()  # synchronises the device before cudaHostUnregister


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
