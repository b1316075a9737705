"""Read arrays inside an ``.npz`` in row blocks, and write ``.npy`` files block by block.

An ``.npz`` is a zip archive with one ``.npy`` file per key.  ``np.load`` reads a member whole,
which for ogbn-papers100M's ``raw/data.npz`` (111M x 128 fp16 features, 2 x 1.6B int64 edges)
means ~55 GB in memory.  A zip member can be read incrementally instead (stored members by
seeking, deflated ones by decompressing on the fly): :class:`NpzArrays` parses each member's
``.npy`` header and yields row blocks, so memory holds one block at a time.

Object arrays are refused (reading them would unpickle data from the file), and so is a
member whose header declares more data than the member holds, or a deflated member that would
expand more than ``trilab.safe_load`` allows: a header is checked before it sizes anything.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trilab.safe_load import MAX_EXPANSION, MIN_MEMBER_LIMIT
from zerocopy_gcn.graph.csr import GraphFormatError

_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # zip local file header (30 bytes)


class NpzArrays:
    """The arrays of one ``.npz`` file, opened lazily; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise GraphFormatError(f"{self.path}: missing")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as error:
            raise GraphFormatError(f"{self.path}: not a readable .npz archive ({error})") from error
        self._headers: dict[str, tuple[tuple[int, ...], bool, np.dtype, int]] = {}

    def __enter__(self) -> NpzArrays:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def keys(self) -> list[str]:
        return [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]

    def __contains__(self, key: str) -> bool:
        return f"{key}.npy" in self._zip.namelist()

    def where(self, key: str) -> str:
        return f"{self.path}:{key}"

    def _open(self, key: str) -> BinaryIO:
        if key not in self:
            raise GraphFormatError(f"{self.path}: key {key!r} missing (has {sorted(self.keys())})")
        try:
            return self._zip.open(f"{key}.npy")
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:
            raise GraphFormatError(f"{self.where(key)}: cannot be read ({error})") from error

    def header(self, key: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        """(shape, fortran_order, dtype, header length in bytes) of member ``key``."""
        if key not in self._headers:
            with self._open(key) as handle:
                try:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
                except (ValueError, zipfile.BadZipFile, OSError, EOFError) as error:
                    raise GraphFormatError(
                        f"{self.where(key)}: not a readable .npy header ({error})"
                    ) from error
                offset = handle.tell()
            if dtype.hasobject:
                raise GraphFormatError(
                    f"{self.where(key)}: object arrays are refused (reading "
                    "them would unpickle data from the file)"
                )
            self._check_size(key, tuple(shape), dtype, offset)
            self._headers[key] = (tuple(shape), bool(fortran), dtype, offset)
        return self._headers[key]

    def _check_size(self, key: str, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        info = self._zip.getinfo(f"{key}.npy")
        count = 1
        for size in shape:
            count *= int(size)
        declared = count * dtype.itemsize
        if info.file_size - offset < declared:
            raise GraphFormatError(
                f"{self.where(key)}: truncated: its header declares shape "
                f"{shape} ({declared:,} bytes) but the member holds "
                f"{max(0, info.file_size - offset):,}"
            )
        limit = max(MIN_MEMBER_LIMIT, MAX_EXPANSION * info.compress_size)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > limit:
            raise GraphFormatError(
                f"{self.where(key)}: would decompress from "
                f"{info.compress_size:,} to {info.file_size:,} bytes, more "
                f"than {MAX_EXPANSION}x; refused as a decompression bomb"
            )
        if info.header_offset + info.compress_size > self.path.stat().st_size:
            raise GraphFormatError(
                f"{self.where(key)}: truncated: the archive ends inside this "
                "member (download or copy it again)"
            )

    def shape(self, key: str) -> tuple[int, ...]:
        return self.header(key)[0]

    def dtype(self, key: str) -> np.dtype:
        return self.header(key)[2]

    def read(self, key: str) -> np.ndarray:
        """A whole (small) member, e.g. ``num_nodes_list``."""
        shape, fortran, dtype, _ = self.header(key)
        values = np.concatenate(
            list(self._elements(key, 0, int(np.prod(shape)), 1 << 20)) or [np.zeros(0, dtype)]
        )
        return values.reshape(shape, order="F" if fortran else "C")

    def _reader(self, key: str, byte_offset: int) -> BinaryIO:
        """A file object positioned ``byte_offset`` bytes into member ``key``'s data.

        Stored members (``np.savez``) are read straight from the archive file, which seeks
        in O(1) and reads into numpy buffers; deflated ones (``np.savez_compressed``) go
        through zipfile's decompressor, whose forward seek decompresses what it skips.
        """
        info = self._zip.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            handle = self._open(key)
            handle.seek(byte_offset)
            return handle
        handle = open(self.path, "rb")  # noqa: SIM115 - the caller closes it
        handle.seek(info.header_offset)
        local = handle.read(_LOCAL_HEADER.size)
        if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
            handle.close()
            raise GraphFormatError(f"{self.where(key)}: damaged archive (bad local header)")
        name_length, extra_length = _LOCAL_HEADER.unpack(local)[-2:]
        handle.seek(
            info.header_offset + _LOCAL_HEADER.size + name_length + extra_length + byte_offset
        )
        return handle

    def _elements(self, key: str, first: int, count: int, block: int) -> Iterator[np.ndarray]:
        """``count`` elements in storage order from element ``first``, ``block`` at a time."""
        _, _, dtype, offset = self.header(key)
        with self._reader(key, offset + first * dtype.itemsize) as handle:
            done = 0
            while done < count:
                take = min(block, count - done)
                values = np.empty(take, dtype=dtype)
                try:
                    got = handle.readinto(memoryview(values).cast("B"))
                except (zipfile.BadZipFile, OSError, EOFError) as error:
                    raise GraphFormatError(
                        f"{self.where(key)}: unreadable after element {first + done} ({error})"
                    ) from error
                if got != take * dtype.itemsize:
                    raise GraphFormatError(
                        f"{self.where(key)}: truncated: ends after element "
                        f"{first + done + got // dtype.itemsize} of "
                        f"{first + count}"
                    )
                yield values
                done += take

    def row_blocks(self, key: str, rows_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, block) over a 1-D or C-order 2-D member."""
        shape, fortran, _, _ = self.header(key)
        if len(shape) not in (1, 2):
            raise GraphFormatError(
                f"{self.where(key)}: expected a 1-D or 2-D array, got shape {shape}"
            )
        width = shape[1] if len(shape) == 2 else 1
        if fortran and width > 1:
            raise GraphFormatError(
                f"{self.where(key)}: stored in Fortran (column) order, which "
                "cannot be streamed by rows; re-save it C-ordered "
                "(np.ascontiguousarray)"
            )
        row = 0
        for block in self._elements(key, 0, shape[0] * width, max(1, rows_per_block) * width):
            rows = block.shape[0] // width
            yield row, block.reshape((rows, width) if len(shape) == 2 else (rows,))
            row += rows

    def edge_blocks(
        self, key: str, edges_per_block: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(source, destination) blocks of a ``[2, E]`` edge array, either storage order."""
        shape, fortran, dtype, _ = self.header(key)
        if len(shape) != 2 or shape[0] != 2:
            raise GraphFormatError(
                f"{self.where(key)}: edge_index must have shape [2, E], got {shape}"
            )
        if dtype.kind not in "iuf":  # float ids are checked for integrality by the caller
            raise GraphFormatError(f"{self.where(key)}: edge ids must be integers, got {dtype}")
        edges = shape[1]
        if fortran:  # pairs interleaved: src0 dst0 src1 dst1 ...
            for block in self._elements(key, 0, 2 * edges, 2 * edges_per_block):
                pairs = block.reshape(-1, 2)
                yield pairs[:, 0], pairs[:, 1]
            return
        sources = self._elements(key, 0, edges, edges_per_block)
        targets = self._elements(key, edges, edges, edges_per_block)
        yield from zip(sources, targets, strict=True)


class NpyWriter:
    """Write an ``.npy`` file of known shape block by block with plain file writes.

    Plain writes (not a writable memory map) keep the written pages out of this process's
    resident set: the page cache holds them and the kernel writes them back.
    """

    def __init__(self, path: Path, dtype: np.dtype | type, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.rows = 0
        self._handle = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(self._handle, header)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: block of shape {block.shape} does not fit {self.shape}")
        if self.rows + block.shape[0] > self.shape[0]:
            raise ValueError(f"{self.path}: more rows than the {self.shape[0]} declared")
        self._handle.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        if self._handle.closed:
            return
        self._handle.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} rows written, {self.shape[0]} declared")

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._handle.close()
