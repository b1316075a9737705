"""The three split formats: IPD partition CSVs, curated labels_splits.csv, a folder tree."""

from __future__ import annotations

import contextlib
import csv
import random
from collections.abc import Iterator, Mapping
from pathlib import Path

from drag import CLASS_NAMES, PRIVATE, PUBLIC
from drag.data.dataset import Sample
from drag.data.images import IMAGE_SUFFIXES
from drag.errors import DragInputError, MissingFileError

SPLITS = ("train", "val", "test")
TEXT_LABELS = {"private": PRIVATE, "public": PUBLIC}
FOLD_CODES = {"train": 0, "val": 1, "test": 2}


class DataFormatError(DragInputError):
    """A split file has a missing column or an unknown value; the message names both."""


def _resolve(image_root: Path, name: str | None, where: str, column: str) -> str:
    if not (name or "").strip():
        raise DataFormatError(f"{where}: no image name in column {column!r}")
    path = Path(name)
    return str(path if path.is_absolute() else image_root / path)


def _undecodable(path: Path) -> tuple[int, int]:
    """(line number, byte) of the first byte of ``path`` that is not UTF-8, read line by line."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return number, line[error.start]
    return 0, 0


@contextlib.contextmanager
def _csv_rows(path: Path) -> Iterator[csv.DictReader]:
    """A DictReader over ``path`` whose decoding and CSV errors name the file and line.

    utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark, which plain utf-8 leaves
    glued to the first column's name ("missing column img_name").
    """
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            yield reader
    except UnicodeDecodeError:
        line, byte = _undecodable(path)
        raise DataFormatError(
            f"{path} line {line}: byte 0x{byte:02x} is not UTF-8 text; save the file as "
            "UTF-8 (a spreadsheet's 'CSV UTF-8')"
        ) from None
    except csv.Error as error:
        line = reader.line_num + 1 if reader is not None else 1
        raise DataFormatError(f"{path} near line {line}: not readable as CSV: {error}") from None


def load_ipd_partition(
    partitions_dir: str | Path, partition: int, image_root: str | Path
) -> dict[str, list[Sample]]:
    """``partitions_dir/partition{k}/{train,val,test}.csv`` with columns img_name, label."""
    folder = Path(partitions_dir) / f"partition{partition}"
    image_root = Path(image_root)
    splits = {}
    for split in SPLITS:
        path = folder / f"{split}.csv"
        if not path.is_file():
            raise MissingFileError(f"IPD split file not found: {path}")
        samples = []
        with _csv_rows(path) as reader:
            missing = {"img_name", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DataFormatError(f"{path}: missing column(s) {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                value = (row["label"] or "").strip().lower()
                if value not in TEXT_LABELS:
                    raise DataFormatError(
                        f"{path} line {line}: label {row['label']!r} is not private/public"
                    )
                image = _resolve(image_root, row["img_name"], f"{path} line {line}", "img_name")
                samples.append(Sample(image, TEXT_LABELS[value]))
        splits[split] = samples
    return splits


def parse_label_map(label_map: Mapping) -> dict[str, int]:
    """``{raw value: 'private'|'public'}`` -> ``{str(raw value): 0|1}``."""
    parsed = {}
    for raw, name in label_map.items():
        name = str(name).strip().lower()
        if name not in TEXT_LABELS:
            raise DataFormatError(f"label_map maps {raw!r} to {name!r}; use private or public")
        parsed[str(raw).strip()] = TEXT_LABELS[name]
    if set(parsed.values()) != {PRIVATE, PUBLIC}:
        raise DataFormatError(f"label_map {dict(label_map)} must name both private and public")
    return parsed


def load_labels_splits(
    csv_path: str | Path,
    image_root: str | Path,
    fold_column: str,
    label_map: Mapping,
    image_column: str = "Image Name",
    label_column: str = "Label 2-class",
) -> dict[str, list[Sample]]:
    """Curated release / PrivacyAlert style: one CSV, a fold column coded 0/1/2 = train/val/test.

    The label coding differs between datasets, so ``label_map`` is required and explicit.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MissingFileError(f"labels file not found: {csv_path}")
    mapping = parse_label_map(label_map)
    image_root = Path(image_root)
    codes = {str(v): k for k, v in FOLD_CODES.items()}
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    with _csv_rows(csv_path) as reader:
        columns = set(reader.fieldnames or [])
        missing = {image_column, label_column, fold_column} - columns
        if missing:
            raise DataFormatError(
                f"{csv_path}: missing column(s) {sorted(missing)}; columns are {sorted(columns)}"
            )
        for line, row in enumerate(reader, start=2):
            raw_label = (row[label_column] or "").strip()
            raw_label = raw_label[:-2] if raw_label.endswith(".0") else raw_label
            if raw_label not in mapping:
                raise DataFormatError(
                    f"{csv_path} line {line}: {label_column} {row[label_column]!r} is not in "
                    f"label_map {sorted(mapping)}"
                )
            raw_fold = (row[fold_column] or "").strip()
            raw_fold = raw_fold[:-2] if raw_fold.endswith(".0") else raw_fold
            if raw_fold not in codes:
                raise DataFormatError(
                    f"{csv_path} line {line}: fold column {fold_column!r} has {raw_fold!r}, "
                    "expected 0 (train), 1 (val) or 2 (test)"
                )
            where = f"{csv_path} line {line}"
            sample = Sample(
                _resolve(image_root, row[image_column], where, image_column), mapping[raw_label]
            )
            splits[codes[raw_fold]].append(sample)
    return splits


def load_folder_tree(
    root: str | Path, fractions: Mapping[str, float], seed: int
) -> dict[str, list[Sample]]:
    """``root/private/**`` and ``root/public/**`` split per class (stratified) with a seeded RNG."""
    root = Path(root)
    if abs(sum(fractions[s] for s in SPLITS) - 1.0) > 1e-6:
        raise DataFormatError(f"split fractions {dict(fractions)} must sum to 1")
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for name in CLASS_NAMES:
        folder = root / name
        if not folder.is_dir():
            raise MissingFileError(f"class folder not found: {folder} (expected private/, public/)")
        files = sorted(
            str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        random.Random(f"{seed}-{name}").shuffle(files)
        n_train = round(len(files) * fractions["train"])
        n_val = round(len(files) * fractions["val"])
        label = TEXT_LABELS[name]
        parts = {
            "train": files[:n_train],
            "val": files[n_train : n_train + n_val],
            "test": files[n_train + n_val :],
        }
        for split, paths in parts.items():
            splits[split].extend(Sample(p, label) for p in paths)
    for split in SPLITS:
        splits[split].sort(key=lambda s: s.path)
    return splits


def class_counts(samples: list[Sample]) -> dict[str, int]:
    return {name: sum(1 for s in samples if s.label == i) for i, name in enumerate(CLASS_NAMES)}
