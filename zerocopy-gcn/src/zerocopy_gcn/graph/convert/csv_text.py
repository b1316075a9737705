"""Numeric CSV files (OGB's ``*.csv.gz``), parsed a block of lines at a time.

Malformed lines are named with their file and line number; a gzip stream may expand only as
much as :mod:`trilab.safe_load` lets an npz member expand.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trilab.safe_load import MAX_EXPANSION, MIN_MEMBER_LIMIT
from zerocopy_gcn.graph.csr import GraphFormatError

_TEXT_BLOCK_CHARS = 1 << 24  # characters of CSV text parsed at a time
_READ_CHARS = 1 << 16  # gzip allocates a buffer of the size asked for, so ask in small pieces
_INT64_ENDS = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


def _open_text(path: Path):
    # undecodable bytes become U+FFFD, which the number parser then reports with its line
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - caller closes


def _unreadable(path: Path, error: BaseException) -> GraphFormatError:
    if isinstance(error, gzip.BadGzipFile) and "not a gzipped" in str(error).lower():
        reason = "not gzip-compressed although it is named .gz (compress it or drop the .gz)"
    elif isinstance(error, EOFError):
        reason = "truncated: the compressed stream ends early (download or copy it again)"
    else:
        reason = f"damaged ({error})"
    return GraphFormatError(f"{path}: unreadable: {reason}")


def _show(text: str) -> str:
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _parse_failure(
    path: Path, lines: list[str], width: int, integral: bool, first_line: int
) -> GraphFormatError:
    """The first line of a block that does not hold ``width`` numbers (ids: integers)."""
    for offset, line in enumerate(lines):
        number = first_line + offset + 1
        fields = line.strip().split(",")
        if len(fields) != width:
            return GraphFormatError(
                f"{path}: line {number} holds {len(fields)} comma-separated "
                f"values, expected {width}: {_show(line)}"
            )
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                hint = " (a header row? these files have none)" if number == 1 else ""
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} is not a number{hint}"
                )
            if integral and not (np.isfinite(value) and value.is_integer()):
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} is not an "
                    "integer (node ids are whole numbers)"
                )
            if integral and not _INT64_ENDS[0] < int(value) < _INT64_ENDS[1]:
                return GraphFormatError(
                    f"{path}: line {number}: {_show(field)} does not fit a 64-bit integer"
                )
    return GraphFormatError(
        f"{path}: lines {first_line + 1}..{first_line + len(lines)} do not "
        f"all hold {width} comma-separated numbers"
    )


def _parse_lines(
    path: Path, block: str, rows: int, width: int, integral: bool, first_line: int
) -> np.ndarray:
    """``rows`` whole lines of ``width`` numbers each; lines are split only to name an error."""
    text = block.replace(",", " ")
    count = width * rows
    try:
        values = np.fromstring(text, dtype=np.int64 if integral else np.float64, sep=" ")
    except ValueError:
        values = None
    # np.fromstring saturates ids that overflow int64 instead of failing
    if (
        values is not None
        and values.size == count
        and not (
            integral
            and values.size
            and (values.min() == _INT64_ENDS[0] or values.max() == _INT64_ENDS[1])
        )
    ):
        return values.reshape(rows, width)
    if integral:  # ids written by a float column ("3.0") are still ids
        try:
            values = np.fromstring(text, dtype=np.float64, sep=" ")
        except ValueError:
            values = None
        if (
            values is not None
            and values.size == count
            and np.isfinite(values).all()
            and np.all(values == np.round(values))
            and np.all(np.abs(values) < 2.0**53)
        ):
            return values.astype(np.int64).reshape(rows, width)
    raise _parse_failure(path, block.splitlines(), width, integral, first_line)


def _read_text(handle, size: int) -> str:
    parts, have = [], 0
    while have < size:
        part = handle.read(_READ_CHARS)
        if not part:
            break
        parts.append(part)
        have += len(part)
    return "".join(parts)


def read_blocks(
    path: Path, columns: int | None, dtype, max_rows: int | None = None, what: str = "rows"
) -> Iterator[np.ndarray]:
    """Numeric rows of a (gzipped) CSV file, a block of lines at a time.

    ``dtype`` float reads numbers, anything else reads integers (non-integral values are
    refused, never truncated).  More than ``max_rows`` lines is an error raised as soon as it
    is seen, so an oversized file is not read to its end first.
    """
    integral = dtype is not float
    text_limit = (
        max(MIN_MEMBER_LIMIT, MAX_EXPANSION * path.stat().st_size) if path.suffix == ".gz" else None
    )
    line_number = text_chars = 0
    carry = ""
    try:
        with _open_text(path) as handle:
            while True:
                # one string per block, not one per line: short lines ("0\n") as Python
                # strings would cost ~25x their size
                chunk = _read_text(handle, _TEXT_BLOCK_CHARS)
                text_chars += len(chunk)
                if text_limit is not None and text_chars > text_limit:
                    raise GraphFormatError(
                        f"{path}: decompresses to more than {text_limit:,} characters from "
                        f"{path.stat().st_size:,} bytes ({MAX_EXPANSION}x); refused as a "
                        "decompression bomb"
                    )
                if chunk:
                    cut = chunk.rfind("\n") + 1
                    block, carry = (
                        (carry + chunk[:cut], chunk[cut:]) if cut else ("", carry + chunk)
                    )
                else:
                    block, carry = carry, ""  # a last line without its newline
                if not block:
                    if not chunk:
                        return
                    continue
                rows = block.count("\n") + (not block.endswith("\n"))
                first = block[: block.find("\n")] if "\n" in block else block
                width = columns if columns is not None else first.count(",") + 1
                values = _parse_lines(path, block, rows, width, integral, line_number)
                del block
                line_number += rows
                if max_rows is not None and line_number > max_rows:
                    raise GraphFormatError(
                        f"{path}: holds more than {max_rows:,} lines, the most {what} it can have"
                    )
                yield values
    except (OSError, EOFError, zlib.error) as error:
        raise _unreadable(path, error) from error


def read_all(
    path: Path, columns: int | None, dtype, max_rows: int | None = None, what: str = "rows"
) -> np.ndarray:
    if not path.is_file():
        raise GraphFormatError(f"{path}: missing")
    blocks = list(read_blocks(path, columns, dtype, max_rows, what))
    width = columns or (blocks[0].shape[1] if blocks else 1)
    return np.concatenate(blocks) if blocks else np.zeros((0, width), dtype)
