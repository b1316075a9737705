"""Seeded synthetic privacy dataset, written as a folder tree and as IPD-style CSV partitions.

    python -m drag.data.synthesize --out data/synthetic --n 2000

Layout: ``OUT/images/{private,public}/NNNNN.jpg`` (the folder-tree format),
``OUT/partition{k}/{train,val,test}.csv`` (IPD format, img_name relative to OUT/images) and
``OUT/labels_splits.csv`` (curated format, Label 2-class 0 = private, 1 = public).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from drag.data.drawing import draw_image
from trilab.entry import ensure_folder
from trilab.errors import UserError, report_user_errors

PRIVATE_FRACTION = 13910 / 38525  # the Image Privacy Dataset's share of private images


PROGRAM = "python -m drag.data.synthesize"
MIN_SIZE = 32  # the drawings' smallest shapes (circles of radius 4 to size/5) need it


def check_settings(n: int, size: int, private_fraction: float, partitions: int) -> None:
    """Refuse a setting that would write nonsense or fail half-way, naming its option."""
    if n < 1:
        raise UserError(f"--n must be at least 1 (images), got {n}")
    if size < MIN_SIZE:
        raise UserError(f"--size must be at least {MIN_SIZE} (pixels), got {size}")
    if not 0 < private_fraction < 1:
        raise UserError(
            f"--private-fraction must be between 0 and 1 (both classes present), got "
            f"{private_fraction}"
        )
    if partitions < 1:
        raise UserError(f"--partitions must be at least 1, got {partitions}")


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """cv2.imwrite reports a failed write (full disk, no permission) only by returning False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise UserError(f"cannot write image {path} (full disk or no permission?)")


def synthesize(
    out: str | Path,
    n: int = 2000,
    size: int = 160,
    seed: int = 0,
    private_fraction: float = PRIVATE_FRACTION,
    partitions: int = 1,
    fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
    progress: bool = True,
) -> Path:
    check_settings(n, size, private_fraction, partitions)
    out = ensure_folder(out, "output folder")
    n_private = round(n * private_fraction)
    names: list[tuple[str, str]] = []
    for index in tqdm(range(n), desc="synthesize", disable=not progress):
        private = index < n_private
        label = "private" if private else "public"
        rng = np.random.default_rng([seed, index])
        image = draw_image(rng, size, private)
        rel = f"{label}/{index:05d}.jpg"
        write_jpeg(out / "images" / rel, image)
        names.append((rel, label))
    for k in range(1, partitions + 1):
        _write_partition(out / f"partition{k}", names, fractions, seed=seed * 1000 + k)
    _write_labels_splits(out / "labels_splits.csv", out / "partition1")
    (out / "synthesize.json").write_text(
        json.dumps(
            {
                "n": n,
                "size": size,
                "seed": seed,
                "private_fraction": private_fraction,
                "partitions": partitions,
                "fractions": list(fractions),
            },
            indent=2,
        )
    )
    return out


def _write_partition(folder: Path, names, fractions, seed: int) -> None:
    """Stratified random split, one CSV per split (IPD column names)."""
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for label in ("private", "public"):
        items = [item for item in names if item[1] == label]
        random.Random(f"{seed}-{label}").shuffle(items)
        n_train = round(len(items) * fractions[0])
        n_val = round(len(items) * fractions[1])
        splits["train"] += items[:n_train]
        splits["val"] += items[n_train : n_train + n_val]
        splits["test"] += items[n_train + n_val :]
    for split, items in splits.items():
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["img_name", "label"])
            writer.writerows(sorted(items))


def _write_labels_splits(path: Path, partition: Path) -> None:
    rows = []
    for code, split in enumerate(("train", "val", "test")):
        with open(partition / f"{split}.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows.append((row["img_name"], 0 if row["label"] == "private" else 1, code))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Name", "Label 2-class", "0"])
        writer.writerows(sorted(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=2000, help="number of images")
    parser.add_argument("--size", type=int, default=160, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=1, help="IPD-style partitions to write")
    parser.add_argument("--private-fraction", type=float, default=PRIVATE_FRACTION)
    args = parser.parse_args(argv)
    out = report_user_errors(
        lambda: synthesize(
            args.out,
            n=args.n,
            size=args.size,
            seed=args.seed,
            private_fraction=args.private_fraction,
            partitions=args.partitions,
        ),
        program=PROGRAM,
    )
    print(f"wrote {args.n} images and split files under {out}")


if __name__ == "__main__":
    main()
