import numpy as np
import pytest

from glagcn.model.authors_reference import (
    S_AGCN_H36M_PAIRS,
    S_AGCN_HUMANEVA_PAIRS,
    authors_adjacency,
)
from glagcn.skeleton import H36M_17, HUMANEVA_15, MPI_INF_3DHP_17, Skeleton


def test_humaneva_graph_is_the_authors_directed_pairs():
    subsets = HUMANEVA_15.adjacency_subsets()
    expected = authors_adjacency(S_AGCN_HUMANEVA_PAIRS, 15).astype(np.float32)
    np.testing.assert_array_equal(subsets, expected)
    # e.g. thorax (1-based 2) -> left shoulder (3): A_in[3-1, 2-1] = 1 / (links into column 2)
    assert subsets[1][2, 1] == pytest.approx(1 / 3)  # column 2 (thorax) gets 3, 6 and 1
    assert subsets[1][1, 2] == 0.0
    # the limbs run parent -> child, so the graph is not the parent list's child -> parent one
    from_parents = [(child + 1, parent + 1) for child, parent in HUMANEVA_15.bones]
    assert not np.array_equal(subsets, authors_adjacency(from_parents, 15))


def test_h36m_graph_is_the_authors_child_to_parent_pairs():
    expected = authors_adjacency(S_AGCN_H36M_PAIRS, 17).astype(np.float32)
    np.testing.assert_array_equal(H36M_17.adjacency_subsets(), expected)
    # and not the reversed (parent -> child) pairs, so the test can fail
    reversed_pairs = [(j, i) for i, j in S_AGCN_H36M_PAIRS]
    assert not np.array_equal(H36M_17.adjacency_subsets(), authors_adjacency(reversed_pairs, 17))


def test_3dhp_graph_comes_from_its_own_parents():
    subsets = MPI_INF_3DHP_17.adjacency_subsets()
    for child, parent in MPI_INF_3DHP_17.bones:
        assert subsets[1][parent, child] > 0 and subsets[2][child, parent] > 0
    assert subsets[1][:, 14].sum() == 0  # the root (pelvis, index 14) has no parent


def test_graph_links_must_name_existing_joints():
    with pytest.raises(ValueError, match=r"graph link \(0, 3\) is not a pair of joints 0..2"):
        Skeleton("tiny", ("a", "b", "c"), (-1, 0, 1), (), (), graph_inward=((0, 3),))
