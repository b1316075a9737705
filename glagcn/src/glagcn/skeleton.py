"""Skeleton definitions (joint order, parents, left/right) and the graph derived from them.

Every dataset's graph is built from its own skeleton (the authors' 3DHP script used the H36M
order by mistake).  The graph's directed "inward" links are the bones (child -> parent) unless a
skeleton lists its own: HumanEva-I uses the authors' pairs, whose directions differ from its
parent list on the limbs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    joints_left: tuple[int, ...]
    joints_right: tuple[int, ...]
    root: int = 0
    graph_inward: tuple[tuple[int, int], ...] | None = None  # (source, target), 0-based

    def __post_init__(self) -> None:
        n = len(self.parents)
        if len(self.joint_names) != n:
            raise ValueError(f"{self.name}: {len(self.joint_names)} names for {n} joints")
        if sorted(p for p in self.parents if p < 0) != [-1] or self.parents[self.root] != -1:
            raise ValueError(f"{self.name}: exactly the root must have parent -1")
        if len(self.joints_left) != len(self.joints_right):
            raise ValueError(f"{self.name}: left and right joint lists differ in length")
        for pair in self.graph_inward or ():
            if len(pair) != 2 or not all(0 <= j < n for j in pair):
                raise ValueError(
                    f"{self.name}: graph link {pair} is not a pair of joints 0..{n - 1}"
                )

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    def joint(self, name: str) -> int:
        """The index of the joint called ``name``."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"{self.name} has no joint {name!r}: {self.joint_names}") from None

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(child, parent) pairs."""
        return [(child, parent) for child, parent in enumerate(self.parents) if parent >= 0]

    def flip_permutation(self) -> np.ndarray:
        """Joint order after a horizontal flip: left and right swapped."""
        permutation = np.arange(self.num_joints)
        permutation[list(self.joints_left)] = self.joints_right
        permutation[list(self.joints_right)] = self.joints_left
        return permutation

    @property
    def inward_links(self) -> list[tuple[int, int]]:
        """The graph's directed inward pairs (i, j), 0-based: the bones (child, parent) unless
        ``graph_inward`` lists others."""
        if self.graph_inward is not None:
            return [tuple(pair) for pair in self.graph_inward]
        return self.bones

    def adjacency_subsets(self) -> np.ndarray:
        """The three normalised subsets of the spatial graph (self, inward, outward): (3, V, V).

        As 2s-AGCN builds them: pair (i, j) sets ``A[j, i] = 1``; outward pairs are the inward
        ones reversed (the transpose); each column is divided by its sum.  Features mix as
        ``x @ A`` over the joint axis, so joint i receives from j along an inward pair.
        """
        v = self.num_joints
        identity = np.eye(v, dtype=np.float32)
        inward = np.zeros((v, v), dtype=np.float32)
        for i, j in self.inward_links:
            inward[j, i] = 1.0
        outward = inward.T.copy()
        return np.stack([identity, _normalise_columns(inward), _normalise_columns(outward)])


def _normalise_columns(matrix: np.ndarray) -> np.ndarray:
    degree = matrix.sum(axis=0)
    scale = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return matrix * scale[None, :]


H36M_17 = Skeleton(
    name="h36m17",
    joint_names=(
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "spine",
        "thorax",
        "neck_nose",
        "head",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    joints_left=(4, 5, 6, 11, 12, 13),
    joints_right=(1, 2, 3, 14, 15, 16),
)

# The authors' HumanEva-I graph as they list it, (i, j) inward pairs in 1-based joint numbers.
# On the limbs the pairs run parent -> child, the reverse of H36M's (child, parent) bones;
# inward and outward have separate weights, so the direction is kept as listed.
HUMANEVA_15_AUTHORS_INWARD_1BASED = (
    (15, 2),
    (2, 3),
    (3, 4),
    (4, 5),
    (2, 6),
    (6, 7),
    (7, 8),
    (2, 1),
    (1, 12),
    (12, 13),
    (13, 14),
    (1, 9),
    (9, 10),
    (10, 11),
)

# HumanEva-I, 15 joints, in the order of the VideoPose3D humaneva15 files.
HUMANEVA_15 = Skeleton(
    name="humaneva15",
    joint_names=(
        "pelvis",
        "thorax",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_hip",
        "right_knee",
        "right_ankle",
        "head",
    ),
    parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    joints_left=(2, 3, 4, 8, 9, 10),
    joints_right=(5, 6, 7, 11, 12, 13),
    graph_inward=tuple((i - 1, j - 1) for i, j in HUMANEVA_15_AUTHORS_INWARD_1BASED),
)

# MPI-INF-3DHP, the 17 joints of the preprocessed test/train npz files (root = pelvis, index 14).
MPI_INF_3DHP_17 = Skeleton(
    name="3dhp17",
    joint_names=(
        "head_top",
        "neck",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "spine",
        "head",
    ),
    parents=(16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    joints_left=(5, 6, 7, 11, 12, 13),
    joints_right=(2, 3, 4, 8, 9, 10),
    root=14,
)

SKELETONS = {s.name: s for s in (H36M_17, HUMANEVA_15, MPI_INF_3DHP_17)}

# The 14 joints of the 3DHP PCK/AUC protocol: head, neck, shoulders, elbows, wrists, hips,
# knees, ankles (indices into MPI_INF_3DHP_17).
PCK_JOINTS_3DHP = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None
