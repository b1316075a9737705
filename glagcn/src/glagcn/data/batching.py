"""Training windows over many sequences, from one contiguous array per modality.

Every sequence is edge-padded by ``(receptive_field - 1) // 2`` frames at both ends (the
sliding form does the same at inference) and all of them are concatenated once.  A batch is
then a single fancy-indexing gather ``array[start + arange(receptive_field)]``: no Python loop
over samples and no list of small arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from glagcn.data.sequences import DataError, PoseSequence
from glagcn.skeleton import Skeleton


def flip_poses(poses, skeleton: Skeleton):
    """Mirror poses horizontally: negate x and swap left/right joints (numpy or torch)."""
    permutation = skeleton.flip_permutation()
    if isinstance(poses, torch.Tensor):
        flipped = poses[..., torch.as_tensor(permutation, device=poses.device), :].clone()
    else:
        flipped = np.array(poses[..., permutation, :], copy=True)
    flipped[..., 0] *= -1
    return flipped


class WindowedPoses:
    def __init__(self, sequences: Sequence[PoseSequence], receptive_field: int,
                 skeleton: Skeleton, flip_augment: bool = False) -> None:
        if not sequences:
            raise DataError("no training sequences")
        self.receptive_field = receptive_field
        self.pad = (receptive_field - 1) // 2
        self.skeleton = skeleton
        self.flip_augment = flip_augment
        widths = [(self.pad, self.pad), (0, 0), (0, 0)]
        keypoints, poses, starts = [], [], []
        offset = 0
        for sequence in sequences:
            if sequence.poses_3d is None:
                raise DataError(f"{sequence.subject}/{sequence.action} has no 3D poses to train on")
            frames = len(sequence.keypoints_2d)
            keypoints.append(np.pad(sequence.keypoints_2d, widths, mode="edge"))
            poses.append(np.pad(sequence.poses_3d, widths, mode="edge"))
            valid = (np.ones(frames, dtype=bool) if sequence.valid is None
                     else np.asarray(sequence.valid, dtype=bool))
            starts.append(offset + np.flatnonzero(valid))
            offset += frames + 2 * self.pad
        self.keypoints = np.ascontiguousarray(np.concatenate(keypoints), dtype=np.float32)
        self.poses = np.ascontiguousarray(np.concatenate(poses), dtype=np.float32)
        self.window_starts = np.concatenate(starts).astype(np.int64)
        self._offsets = np.arange(receptive_field)

    @property
    def num_frames(self) -> int:
        return len(self.window_starts)

    def batch(self, frame_ids: np.ndarray, flip: np.ndarray | None = None,
              full_sequence_3d: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """2D windows (B, RF, J, 2) and 3D targets (B, RF, J, 3), or (B, 1, J, 3) centre only."""
        rows = self.window_starts[np.asarray(frame_ids)][:, None] + self._offsets
        keypoints = self.keypoints[rows]
        poses = self.poses[rows] if full_sequence_3d else self.poses[rows[:, self.pad:self.pad + 1]]
        if flip is not None and flip.any():
            keypoints[flip] = flip_poses(keypoints[flip], self.skeleton)
            poses[flip] = flip_poses(poses[flip], self.skeleton)
        return torch.from_numpy(keypoints), torch.from_numpy(poses)

    def iterate(self, batch_size: int, shuffle: bool, generator: np.random.Generator,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All windows once, in ``generator``'s order, with random flips if ``flip_augment``.

        The order and flips are drawn up front, so a checkpointed generator state reproduces
        the next epoch exactly.
        """
        order = generator.permutation(self.num_frames) if shuffle else np.arange(self.num_frames)
        flips = (generator.random(self.num_frames) < 0.5 if self.flip_augment
                 else np.zeros(self.num_frames, dtype=bool))
        end = (self.num_frames // batch_size * batch_size if drop_last else self.num_frames)
        for begin in range(0, end, batch_size):
            chosen = order[begin:begin + batch_size]
            yield self.batch(chosen, flips[begin:begin + batch_size])
