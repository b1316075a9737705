"""Reading images and split files (``splits`` builds the train/val/test samples a run uses)."""

from drag.data.dataset import ImageListDataset, Sample
from drag.data.images import BadFileReport
from drag.data.splits import balanced_weights, build_splits, make_loader, maybe_generate

__all__ = [
    "BadFileReport",
    "ImageListDataset",
    "Sample",
    "balanced_weights",
    "build_splits",
    "make_loader",
    "maybe_generate",
]
