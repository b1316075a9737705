"""Read files that users hand us without letting them run code.

Pickle executes whatever callables a file names, so ``np.load(allow_pickle=True)`` and
``torch.load(weights_only=False)`` on a downloaded file can run a command.  Here:

* npz/npy members with object arrays (VideoPose3D's datasets, detectron2 outputs) are decoded by
  :class:`RestrictedUnpickler`, which admits numpy arrays, dtypes and scalars and plain Python
  containers and scalars, nothing else;
* torch files go through ``torch.load(weights_only=True)``.

A refused file raises :class:`UnsafeFileError`, naming the file and the refused global.
"""

from __future__ import annotations

import pickle
import re
import zipfile
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
                "accepted")
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


def _read_npy(handle: BinaryIO, source: str) -> np.ndarray:
    shape, fortran_order, dtype = _read_npy_header(handle, source)
    if dtype.hasobject:
        array = unpickle_data(handle, source)
        if not isinstance(array, np.ndarray):
            raise DataFileError(f"{source}: expected a pickled array, found {type(array).__name__}")
        return array
    count = int(np.prod(shape, dtype=np.int64))
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise DataFileError(f"{source}: truncated array (shape {shape}, dtype {dtype})")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C").copy()


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every member of an ``.npz`` archive as an array; object arrays decoded as data only.

    ``positions_2d = load_npz(f)["positions_2d"].item()`` reads a VideoPose3D file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"file not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataFileError(f"{path} is not an .npz archive ({error})") from error
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for member in archive.namelist():
            key = member[:-4] if member.endswith(".npy") else member
            try:
                with archive.open(member) as handle:
                    arrays[key] = _read_npy(handle, f"{path}[{key!r}]")
            except (zipfile.BadZipFile, EOFError, OSError) as error:
                raise DataFileError(f"{path}[{key!r}] is unreadable ({error})") from error
    return arrays


def load_npy(path: str | Path) -> np.ndarray:
    """One ``.npy`` array; an object array is decoded as data only."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"file not found: {path}")
    with open(path, "rb") as handle:
        return _read_npy(handle, str(path))


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
                "(files are read with torch.load(weights_only=True))") from error
        raise DataFileError(f"{path}: unreadable {what} ({error})") from error
    except Exception as error:  # truncated zip, wrong magic number, EOF ...
        raise DataFileError(f"{path}: unreadable {what} ({error})") from error
