import numpy as np
import pytest

from glagcn.skeleton import H36M_17, HUMANEVA_15, MPI_INF_3DHP_17, Skeleton


def _subsets_from_pairs(pairs_1based, joints):
    """2s-AGCN's construction written out: pair (i, j) sets A[j, i]; outward = reversed pairs;
    self-links; inward/outward columns divided by their sums."""
    inward = np.zeros((joints, joints))
    outward = np.zeros((joints, joints))
    for i, j in pairs_1based:
        inward[j - 1, i - 1] = 1.0
        outward[i - 1, j - 1] = 1.0
    inward /= np.maximum(inward.sum(axis=0), 1.0)
    outward /= np.maximum(outward.sum(axis=0), 1.0)
    return np.stack([np.eye(joints), inward, outward])


def test_humaneva_graph_is_the_authors_directed_pairs():
    authors = [
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
    ]
    subsets = HUMANEVA_15.adjacency_subsets()
    np.testing.assert_array_equal(subsets, _subsets_from_pairs(authors, 15).astype(np.float32))
    # e.g. thorax (1-based 2) -> left shoulder (3): A_in[3-1, 2-1] = 1 / (links into column 2)
    assert subsets[1][2, 1] == pytest.approx(1 / 3)  # column 2 (thorax) gets 3, 6 and 1
    assert subsets[1][1, 2] == 0.0
    # the limbs run parent -> child, so the graph is not the parent list's child -> parent one
    from_parents = [(child + 1, parent + 1) for child, parent in HUMANEVA_15.bones]
    assert not np.array_equal(subsets, _subsets_from_pairs(from_parents, 15))


def test_h36m_graph_is_the_authors_child_to_parent_pairs():
    authors = [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 0),
        (5, 4),
        (6, 5),
        (7, 0),
        (8, 7),
        (9, 8),
        (10, 9),
        (11, 8),
        (12, 11),
        (13, 12),
        (14, 8),
        (15, 14),
        (16, 15),
    ]  # 0-based
    expected = _subsets_from_pairs([(i + 1, j + 1) for i, j in authors], 17)
    np.testing.assert_array_equal(H36M_17.adjacency_subsets(), expected.astype(np.float32))


def test_3dhp_graph_comes_from_its_own_parents():
    subsets = MPI_INF_3DHP_17.adjacency_subsets()
    for child, parent in MPI_INF_3DHP_17.bones:
        assert subsets[1][parent, child] > 0 and subsets[2][child, parent] > 0
    assert subsets[1][:, 14].sum() == 0  # the root (pelvis, index 14) has no parent


def test_graph_links_must_name_existing_joints():
    with pytest.raises(ValueError, match=r"graph link \(0, 3\) is not a pair of joints 0..2"):
        Skeleton("tiny", ("a", "b", "c"), (-1, 0, 1), (), (), graph_inward=((0, 3),))
