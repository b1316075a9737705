"""Robust image reading: EXIF orientation, any mode to RGB, and bad files recorded, not fatal."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def printable_path(path: str | Path) -> str:
    """A file name fit for a CSV, a log or a figure title: bytes that are not UTF-8 (names from
    Windows or cameras, decoded by Python as lone surrogates) become ``\\xNN`` escapes."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK, 16-bit and alpha images to 8-bit RGB (alpha over white).

    Written to hold at most about two full-size copies: a 64 MP palette PNG with transparency
    went through four RGBA copies (1 GB) the direct way.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba)  # the alpha band as the mask: over opaque white
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # float32 and in place: float64 temporaries of a 64 MP 16-bit PNG took 1.1 GB
        array = np.asarray(image, dtype=np.float32)
        low = float(array.min())
        array -= low
        array *= 255 / max(float(array.max()), 1e-9)
        image = Image.fromarray(array.astype(np.uint8))
    return image.convert("RGB")


def _reducible(image: Image.Image) -> Image.Image:
    """``image`` in a mode Image.reduce takes, converting to the smallest such mode that loses
    nothing to_rgb keeps (so the full-size copy before the reduction stays small)."""
    if image.mode in REDUCIBLE_MODES:
        return image
    if image.mode.startswith("I;16"):
        return image.convert("I")
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


# Images more than this many times the model's input side are decoded at reduced size: a
# 13000 x 13000 PNG decoded whole and copied by each step below took 4.6 GB.
REDUCED_DECODE_FACTOR = 4
REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}  # what Image.reduce takes
# Formats without reduced-scale decoding (PNG, TIFF, ...) above this are refused: decoding takes
# about twice width x height x bands bytes (a 13000 x 13000 PNG of 0.5 MB: 1 GB).
MAX_FULL_DECODE_PIXELS = 64_000_000


class ImageTooLargeError(ValueError):
    """An image whose full-size decode would not fit the memory budget (it is skipped)."""


# What a bad image file raises while it is read (PIL: OSError for truncation, ValueError for
# PNG text-chunk limits, DecompressionBombError, SyntaxError from some plugins): the file is
# skipped and listed, never the run stopped.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def read_image(path: str | Path, model_side: int | None = None) -> Image.Image:
    """Open, fully decode (so truncation fails here), apply EXIF orientation, convert to RGB.

    With ``model_side``, an image whose shorter side exceeds ``REDUCED_DECODE_FACTOR`` times it
    is shrunk by a whole factor right after decoding (JPEGs are decoded at reduced scale
    directly), keeping at least that many pixels per model pixel, so one full-size copy at most
    exists and the later resize sees the same content.
    """
    with Image.open(path) as image:
        if model_side:
            keep = REDUCED_DECODE_FACTOR * model_side
            image.draft("RGB", (keep, keep))  # JPEG only; a no-op for other formats
        if image.width * image.height > MAX_FULL_DECODE_PIXELS:
            raise ImageTooLargeError(
                f"{image.width} x {image.height} pixels ({image.format}): decoding it would take "
                f"~{2 * image.width * image.height * len(image.getbands()) / 2**30:.1f} GiB; "
                f"images above {MAX_FULL_DECODE_PIXELS / 1e6:.0f} MP are skipped (JPEGs of any "
                "size are decoded at reduced scale)"
            )
        image.load()
        if model_side:
            factor = min(image.size) // (REDUCED_DECODE_FACTOR * model_side)
            if factor >= 2:
                image = _reducible(image).reduce(factor)
        ImageOps.exif_transpose(image, in_place=True)  # the default copies a full-size image
        return to_rgb(image)


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize to size x size (no augmentation, as the paper), ImageNet normalisation."""
    resized = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


@dataclass
class BadFileReport:
    """Files that could not be used, with the reason; one summary warning, one report file."""

    entries: dict[str, str] = field(default_factory=dict)

    def add(self, path: str | Path, reason: str) -> None:
        self.entries.setdefault(printable_path(path), reason)

    def extend(self, items: Sequence[tuple[str, str]]) -> None:
        for path, reason in items:
            self.add(path, reason)

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self, first: int = 5) -> str:
        shown = ", ".join(list(self.entries)[:first])
        more = f" (+{len(self) - first} more)" if len(self) > first else ""
        return f"{len(self)} unreadable or missing image file(s) skipped: {shown}{more}"

    def write(self, path: str | Path) -> Path | None:
        """Write ``path\treason`` lines; returns the path, or None when nothing was skipped."""
        if not self.entries:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{p}\t{reason}" for p, reason in self.entries.items()]
        path.write_text("path\treason\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return path

    def warn(self, logger=None, report_path: str | Path | None = None) -> None:
        if not self.entries:
            return
        written = self.write(report_path) if report_path else None
        message = self.summary() + (f"; full list in {written}" if written else "")
        if logger is not None:
            logger.warning(message)
        else:
            warnings.warn(message, stacklevel=2)


def quick_check(path: str | Path) -> str | None:
    """Cheap header check before training; returns the reason a file is unusable, or None."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for non-images
        return f"not an image ({type(error).__name__}: {error})"
    return None
