"""Read files that users hand us without letting them run code.

Pickle executes whatever callables a file names, so ``np.load(allow_pickle=True)`` and
``torch.load(weights_only=False)`` on a downloaded file can run a command.  Here:

* npz/npy members with object arrays (VideoPose3D's datasets, detectron2 outputs) are decoded by
  :class:`RestrictedUnpickler`, which admits numpy arrays, dtypes and scalars and plain Python
  containers and scalars, nothing else;
* torch files go through ``torch.load(weights_only=True)``.

A refused file raises :class:`UnsafeFileError`, naming the file and the refused global.

Small files must not turn into large allocations either: an npz member may not decompress to
more than :data:`MAX_EXPANSION` times its stored size (or :data:`MIN_MEMBER_LIMIT`), members are
read only when asked for, and a pickled object graph whose shared references would expand past
:data:`MAX_OBJECT_ELEMENTS_PER_BYTE` elements per stored byte is refused.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from trilab.errors import UserError

_NUMPY_RECONSTRUCT = np._core.multiarray._reconstruct
_NUMPY_SCALAR = np._core.multiarray.scalar

# (module, name) -> object.  numpy 1.x wrote "numpy.core", numpy 2 writes "numpy._core".
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy._core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy.core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol-2 pickles (Python 2 era files) spell bytes through codecs.encode.
    ("_codecs", "encode"): None,  # filled below: only for latin-1 text -> bytes
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"codecs.encode with encoding {encoding!r} is not admitted")
    return text.encode("latin1")


ALLOWED_GLOBALS[("_codecs", "encode")] = _latin1_encode

# numpy 2 pickles each dtype class by name (numpy.dtypes.Float32DType ...) in some paths.
for _name in dir(np.dtypes):
    if _name.endswith("DType"):
        ALLOWED_GLOBALS[("numpy.dtypes", _name)] = getattr(np.dtypes, _name)


MAX_EXPANSION = 64  # real pose / graph npz members compress 1-5x, masks a few tens
MIN_MEMBER_LIMIT = 128 * 2**20
MAX_OBJECT_ELEMENTS_PER_BYTE = 16
MIN_OBJECT_ELEMENTS = 2**22


class UnsafeFileError(UserError):
    """A file asks to construct something other than arrays and plain data."""


class DataFileError(UserError):
    """A data file is missing, truncated or not in the expected container format."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for data only: numpy arrays/dtypes/scalars, dict, list, tuple, str, bytes,
    int, float, bool, None."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafeFileError(
                f"{self.source}: refused to load: the file asks for {module}.{name}, which could "
                "run code; only arrays and plain data (dict, list, tuple, str, numbers) are "
                "accepted"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"{self.source}: refused to load: persistent ids are not data")


def unpickle_data(file: BinaryIO, source: str) -> Any:
    """Unpickle ``file`` admitting only data (see :class:`RestrictedUnpickler`)."""
    try:
        return RestrictedUnpickler(file, source).load()
    except UnsafeFileError:
        raise
    except Exception as error:  # truncated or garbled pickle streams raise many types
        raise DataFileError(f"{source}: unreadable pickled data ({error})") from error


def _read_npy_header(handle: BinaryIO, source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            return fmt.read_array_header_1_0(handle)
        if version == (2, 0):
            return fmt.read_array_header_2_0(handle)
        return fmt._read_array_header(handle, version)
    except ValueError as error:
        raise DataFileError(f"{source}: not a .npy array ({error})") from error


def _count_elements(value: Any, budget: int, source: str) -> None:
    """Walk a decoded object graph counting every element as many times as it is referenced
    (what ``np.asarray`` or a copy would allocate); refuse once ``budget`` is passed."""
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                stack.extend(item.ravel().tolist())
            seen += max(item.size, 1)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
            seen += 1
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
            seen += 1
        else:
            seen += 1
        if seen > budget:
            raise DataFileError(
                f"{source}: its pickled data refer to the same objects over and over and would "
                f"expand past {budget:,} elements; refused (a file of this size cannot need it)"
            )


def _read_npy(handle: BinaryIO, source: str, stored_bytes: int | None = None) -> np.ndarray:
    shape, fortran_order, dtype = _read_npy_header(handle, source)
    if dtype.hasobject:
        array = unpickle_data(handle, source)
        if not isinstance(array, np.ndarray):
            raise DataFileError(f"{source}: expected a pickled array, found {type(array).__name__}")
        size = stored_bytes if stored_bytes is not None else 0
        _count_elements(
            array, max(MIN_OBJECT_ELEMENTS, MAX_OBJECT_ELEMENTS_PER_BYTE * size), source
        )
        return array
    count = int(np.prod(shape, dtype=np.int64))
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise DataFileError(f"{source}: truncated array (shape {shape}, dtype {dtype})")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C").copy()


class NpzArchive(Mapping):
    """The members of an ``.npz`` file, each read (and checked) when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                self._members = {
                    (m.filename[:-4] if m.filename.endswith(".npy") else m.filename): m
                    for m in archive.infolist()
                }
        except (zipfile.BadZipFile, OSError) as error:
            raise DataFileError(f"{path} is not an .npz archive ({error})") from error
        self._arrays: dict[str, np.ndarray] = {}

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            self._arrays[key] = self._read(key)
        return self._arrays[key]

    def _read(self, key: str) -> np.ndarray:
        info = self._members[key]
        source = f"{self.path}[{key!r}]"
        limit = max(MIN_MEMBER_LIMIT, MAX_EXPANSION * info.compress_size)
        if info.file_size > limit:
            raise DataFileError(
                f"{source} would decompress from {info.compress_size:,} to {info.file_size:,} "
                f"bytes, more than {MAX_EXPANSION}x; refused as a decompression bomb"
            )
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as handle:
                return _read_npy(handle, source, info.file_size)
        except (zipfile.BadZipFile, EOFError, OSError) as error:
            raise DataFileError(f"{source} is unreadable ({error})") from error


def load_npz(path: str | Path) -> NpzArchive:
    """The members of an ``.npz`` archive as arrays, read on first access; object arrays are
    decoded as data only.

    ``positions_2d = load_npz(f)["positions_2d"].item()`` reads a VideoPose3D file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"file not found: {path}")
    return NpzArchive(path)


def load_npy(path: str | Path) -> np.ndarray:
    """One ``.npy`` array; an object array is decoded as data only."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"file not found: {path}")
    with open(path, "rb") as handle:
        return _read_npy(handle, str(path), path.stat().st_size)


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL\s+([\w.]+)")


def refused_global(error: BaseException) -> str | None:
    """The global named in torch's weights-only refusal, or ``None`` for other failures
    (a truncated or garbled file)."""
    match = _GLOBAL_IN_MESSAGE.search(str(error))
    return match.group(1) if match else None


def load_torch_file(path: str | Path, map_location: Any = "cpu", what: str = "file") -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file.

    A file that needs anything beyond tensors and plain data raises :class:`UnsafeFileError`.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        name = refused_global(error)
        if name is not None:
            raise UnsafeFileError(
                f"{path}: refused to load {what}: it asks for {name}, which could run code "
                "(files are read with torch.load(weights_only=True))"
            ) from error
        raise DataFileError(f"{path}: unreadable {what} ({error})") from error
    except Exception as error:  # truncated zip, wrong magic number, EOF ...
        raise DataFileError(f"{path}: unreadable {what} ({error})") from error
