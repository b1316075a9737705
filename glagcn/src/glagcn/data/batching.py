"""Training windows over many sequences, from one contiguous table per modality.

Every sequence is edge-padded by ``(receptive_field - 1) // 2`` frames at both ends (the
sliding form does the same at inference) and all of them are concatenated once.  The mirrored
copy of that table (x negated, left/right joints swapped) is built once too and stacked under
it, so a batch, flips included, is a single row gather ``table[start + flip * F +
arange(receptive_field)]``: no Python loop over samples, no per-batch flipping.  The tables
can live on the training device (``to(device)``), so the loop copies nothing per batch.
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
    """All training windows of ``sequences``, batched by index arithmetic on one table.

    ``full_sequence_3d=False`` keeps only what the centre-frame loss needs (targets
    (B, 1, J, 3)), for runs without the sequence branch.  ``causal``: each window ends at its
    target frame (all the padding before the sequence) and the target is the last frame.
    ``keypoint_flip``: the 2D input's mirror permutation when it is not the skeleton's (COCO-17
    keypoints for a 15-joint model).
    """

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        receptive_field: int,
        skeleton: Skeleton,
        flip_augment: bool = False,
        full_sequence_3d: bool = True,
        device: torch.device | str = "cpu",
        causal: bool = False,
        keypoint_flip: Sequence[int] | None = None,
    ) -> None:
        if not sequences:
            raise DataError("no training sequences")
        self.receptive_field = receptive_field
        self.pad = (receptive_field - 1) // 2
        self.target_index = receptive_field - 1 if causal else self.pad
        self.skeleton = skeleton
        self.flip_augment = flip_augment
        self.full_sequence_3d = full_sequence_3d
        before, after = (2 * self.pad, 0) if causal else (self.pad, self.pad)
        widths = [(before, after), (0, 0), (0, 0)]
        keypoints, poses, starts = [], [], []
        offset = 0
        for sequence in sequences:
            if sequence.poses_3d is None:
                raise DataError(f"{sequence.subject}/{sequence.action} has no 3D poses to train on")
            frames = len(sequence.keypoints_2d)
            keypoints.append(np.pad(sequence.keypoints_2d, widths, mode="edge"))
            poses.append(np.pad(sequence.poses_3d, widths, mode="edge"))
            valid = (
                np.ones(frames, dtype=bool)
                if sequence.valid is None
                else np.asarray(sequence.valid, dtype=bool)
            )
            starts.append(offset + np.flatnonzero(valid))
            offset += frames + 2 * self.pad
        self.table_frames = offset
        self.keypoints = self._with_mirror(np.concatenate(keypoints), keypoint_flip)
        self.poses = self._with_mirror(np.concatenate(poses))
        self.window_starts = torch.from_numpy(np.concatenate(starts).astype(np.int64))
        self.offsets = torch.arange(receptive_field)
        self.to(device)

    def _with_mirror(self, frames: np.ndarray, permutation=None) -> torch.Tensor:
        """(2F, J, D): the frames, then their mirror images (rows F..2F-1)."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        if permutation is None:
            mirrored = flip_poses(frames, self.skeleton)
        else:
            mirrored = frames[:, list(permutation)].copy()
            mirrored[..., 0] *= -1
        return torch.from_numpy(np.concatenate([frames, mirrored]))

    def to(self, device: torch.device | str) -> WindowedPoses:
        """Move the tables to ``device``; batches are then gathered there."""
        self.device = torch.device(device)
        for name in ("keypoints", "poses", "window_starts", "offsets"):
            setattr(self, name, getattr(self, name).to(self.device))
        return self

    @property
    def num_frames(self) -> int:
        return len(self.window_starts)

    def batch(self, frame_ids, flip=None) -> tuple[torch.Tensor, torch.Tensor]:
        """2D windows (B, RF, J, 2) and 3D targets (B, RF, J, 3), or (B, 1, J, 3) centre only,
        on the tables' device; ``flip`` (B,) bool mirrors those windows."""
        ids = torch.as_tensor(frame_ids, device=self.device)
        starts = self.window_starts[ids]
        if flip is not None:
            starts = starts + torch.as_tensor(flip, device=self.device).long() * self.table_frames
        rows = starts[:, None] + self.offsets
        shape = (len(ids), self.receptive_field, self.skeleton.num_joints)
        keypoints = self.keypoints.index_select(0, rows.reshape(-1))  # its own joint count
        keypoints = keypoints.reshape(len(ids), self.receptive_field, *self.keypoints.shape[1:])
        if self.full_sequence_3d:
            poses = self.poses.index_select(0, rows.reshape(-1)).reshape(*shape, -1)
        else:
            poses = self.poses.index_select(0, rows[:, self.target_index]).unsqueeze(1)
        return keypoints, poses

    def iterate(
        self,
        batch_size: int,
        shuffle: bool,
        generator: np.random.Generator,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        skip_batches: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All windows once, in ``generator``'s order, with random flips if ``flip_augment``.

        The order and flips are drawn up front (and sent to the device once per epoch), so a
        checkpointed generator state reproduces the next epoch exactly.  With ``world_size``
        > 1 every rank draws the same order and builds only batches ``rank``, ``rank +
        world_size``, ...  ``max_batches`` counts batches of all ranks together.
        ``skip_batches`` (of this rank) resumes a run stopped in the middle of an epoch: the
        same draws are made and the batches already trained on are not built.
        """
        order = generator.permutation(self.num_frames) if shuffle else np.arange(self.num_frames)
        flips = (
            generator.random(self.num_frames) < 0.5
            if self.flip_augment
            else np.zeros(self.num_frames, dtype=bool)
        )
        order = torch.from_numpy(order).to(self.device)
        flips = torch.from_numpy(flips).to(self.device)
        end = self.num_frames // batch_size * batch_size if drop_last else self.num_frames
        if max_batches is not None:
            end = min(end, max_batches * batch_size)
        first = (rank + skip_batches * world_size) * batch_size
        for begin in range(first, end, world_size * batch_size):
            yield self.batch(order[begin : begin + batch_size], flips[begin : begin + batch_size])
