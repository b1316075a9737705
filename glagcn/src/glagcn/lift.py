"""Lift any 2D keypoint sequence to 3D with a trained checkpoint: the library entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glagcn.camera import normalize_screen_coordinates
from glagcn.evaluation import predict_sequence
from glagcn.keypoints_io import KeypointInputError, KeypointSequence, to_h36m_sequence
from glagcn.skeleton import H36M_17
from glagcn.training import model_from_checkpoint


def lift(
    keypoints_2d: np.ndarray,
    image_size: tuple[int, int],
    checkpoint: str | Path,
    scores: np.ndarray | None = None,
    layout: str = "h36m17",
    score_threshold: float = 0.3,
    max_missing_fraction: float = 0.5,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Root-relative 3D poses (T, 17, 3) in metres, H36M-17 order, for every input frame.

    ``keypoints_2d`` is (T, 17, 2) in pixels of an image of ``image_size`` = (width, height),
    in the H36M-17 or COCO-17 ``layout``.  Joints that are NaN or score below
    ``score_threshold`` are interpolated over time; a joint missing in more than
    ``max_missing_fraction`` of the frames is an error.  Sequences shorter than the model's
    receptive field are edge-padded.
    """
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
    if scores is None:
        scores = np.ones(keypoints_2d.shape[:2], dtype=np.float32)
    sequence = KeypointSequence(keypoints_2d, np.asarray(scores, dtype=np.float32),
                                np.arange(len(keypoints_2d)), layout)
    return lift_sequence(sequence, image_size, checkpoint, score_threshold,
                         max_missing_fraction, flip_test, device)


def lift_sequence(sequence: KeypointSequence, image_size: tuple[int, int],
                  checkpoint: str | Path, score_threshold: float = 0.3,
                  max_missing_fraction: float = 0.5, flip_test: bool = True,
                  device: str | torch.device = "cpu") -> np.ndarray:
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise KeypointInputError(f"image size must be positive, got {image_size}")
    pixels, _ = to_h36m_sequence(sequence, score_threshold, max_missing_fraction)
    device = torch.device(device)
    model, extra = model_from_checkpoint(checkpoint, device)
    if extra["skeleton"] != H36M_17.name:
        raise ValueError(f"{checkpoint} lifts the {extra['skeleton']} skeleton; lifting user "
                         "keypoints needs a model trained on the H36M-17 layout")
    normalized = normalize_screen_coordinates(pixels, width, height)
    return predict_sequence(model, normalized, H36M_17, device, flip_test)
