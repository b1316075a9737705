"""Stand-ins for CuPy's CUDA runtime and kernel launcher, so the zero-copy fetcher's logic runs
on the CPU.

``FakeRuntime`` offers only names that ``cupy.cuda.runtime`` of CuPy 14 has (the list is
``data/cupy14_runtime_names.txt``, and a test checks it), with the same call signatures, and
records every call.  Registration is bookkeeping only: the device pointer of a "registered"
range is the host pointer (where ``cudaDevAttrCanUseHostPointerForRegisteredMem`` is 1, as on
every 64-bit Linux GPU) or a distinct fake alias.

``EmulatedLauncher`` runs the real ``gather.cu`` kernels on the CPU (``kernel_emulation``), so a
``ZeroCopyFetcher`` built with both gathers real rows without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kernel_emulation import KERNEL_INDEX

CUPY14_RUNTIME_NAMES = Path(__file__).parent / "data" / "cupy14_runtime_names.txt"
FAKE_ALIAS_OFFSET = 0x7F00_0000_0000


def cupy14_runtime_names() -> set[str]:
    lines = CUPY14_RUNTIME_NAMES.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@dataclass
class PointerAttributes:  # the fields of cupy_backends.cuda.api.runtime.PointerAttributes
    device: int
    devicePointer: int  # noqa: N815 - CuPy's spelling
    hostPointer: int  # noqa: N815
    type: int = 1  # cudaMemoryTypeHost


class FakeRuntime:
    """``cupy.cuda.runtime`` with the calls the zero-copy path makes, recorded in ``calls``."""

    # the enum values CUDA 13's runtime API assigns (cudaDeviceAttr)
    cudaDevAttrCanUseHostPointerForRegisteredMem = 91  # noqa: N815
    cudaDevAttrHostRegisterReadOnlySupported = 113  # noqa: N815

    def __init__(self, can_use_host_pointer: bool = True, read_only_supported: bool = True):
        self.attributes = {
            self.cudaDevAttrCanUseHostPointerForRegisteredMem: int(can_use_host_pointer),
            self.cudaDevAttrHostRegisterReadOnlySupported: int(read_only_supported),
        }
        self.registered: dict[int, tuple[int, int]] = {}
        self.calls: list[str] = []

    def getDevice(self) -> int:  # noqa: N802 - mirrors cupy.cuda.runtime
        self.calls.append("getDevice")
        return 0

    def deviceGetAttribute(self, attrib: int, device: int) -> int:  # noqa: N802
        self.calls.append("deviceGetAttribute")
        return self.attributes[attrib]

    def hostRegister(self, ptr: int, size: int, flags: int) -> None:  # noqa: N802
        self.calls.append("hostRegister")
        self.registered[ptr] = (size, flags)

    def hostUnregister(self, ptr: int) -> None:  # noqa: N802
        self.calls.append("hostUnregister")
        del self.registered[ptr]

    def deviceSynchronize(self) -> None:  # noqa: N802
        self.calls.append("deviceSynchronize")

    def pointerGetAttributes(self, ptr: int) -> PointerAttributes:  # noqa: N802
        self.calls.append("pointerGetAttributes")
        for start, (size, _) in self.registered.items():
            if start <= ptr < start + size:
                return PointerAttributes(0, ptr + FAKE_ALIAS_OFFSET, ptr)
        return PointerAttributes(-2, 0, 0, 0)  # unregistered: no device alias


class EmulatedLauncher:
    """``CupyLauncher``'s interface over the CPU emulation of ``gather.cu``."""

    device_index = 0

    def __init__(self, library, runtime: FakeRuntime | None = None, fail_on: str = ""):
        self.library = library
        self.runtime = runtime if runtime is not None else FakeRuntime()
        self.fail_on = fail_on  # a kernel name whose "compilation" fails
        self.launches = 0

    def kernel(self, name: str) -> int:
        if name == self.fail_on:
            raise RuntimeError(f"compiling {name} failed (test double)")
        _, kernel, word = name.split("_")
        return KERNEL_INDEX[(kernel, int(word.lstrip("w")))]

    def launch(self, kernel: int, grid: int, block: tuple[int, int], args: tuple) -> None:
        self.launches += 1
        table, idx, out_rows, out, n_idx, n_rows, row_words, bad = (int(a) for a in args)
        self.library.emulate_gather(
            kernel,
            table,
            idx,
            out_rows or None,
            out,
            n_idx,
            n_rows,
            row_words,
            bad,
            grid,
            block[0],
            block[1],
            None,
            0,
        )
