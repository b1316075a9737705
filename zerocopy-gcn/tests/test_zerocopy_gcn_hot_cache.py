import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zerocopy_gcn.cache import (
    HotRowCache,
    access_counts_by_degree,
    hotness_order,
    reverse_pagerank,
    rows_for_budget,
)


def _star_graph(n_leaves=6):
    """Every leaf lists the hub 0 as its neighbour; the hub lists every leaf."""
    indptr = [0, n_leaves] + [n_leaves + i + 1 for i in range(n_leaves)]
    indices = list(range(1, n_leaves + 1)) + [0] * n_leaves
    return np.array(indptr, dtype=np.int64), np.array(indices, dtype=np.int64)


def test_degree_ranking_counts_neighbour_list_appearances():
    indptr, indices = _star_graph()
    counts = access_counts_by_degree(indices, 7)
    assert counts.tolist() == [6, 1, 1, 1, 1, 1, 1]
    order = hotness_order(indptr, indices, "degree")
    assert order[0] == 0 and order[1:].tolist() == [1, 2, 3, 4, 5, 6]


def test_reverse_pagerank_is_a_distribution_favouring_the_hub():
    indptr, indices = _star_graph()
    score = reverse_pagerank(indptr, indices)
    assert score.sum() == pytest.approx(1.0)
    assert score[0] > 3 * score[1:].max()
    assert hotness_order(indptr, indices, "reverse_pagerank")[0] == 0


def test_reverse_pagerank_restarts_at_the_seeds():
    # a chain 0 -> 1 -> 2 -> 3 (row v lists v+1); walks from seed 0 never visit node 4
    indptr = np.array([0, 1, 2, 3, 3, 4], dtype=np.int64)
    indices = np.array([1, 2, 3, 0], dtype=np.int64)
    score = reverse_pagerank(indptr, indices, seeds=np.array([0]))
    assert score[4] == 0.0
    assert score[0] > score[1] > score[2] > score[3] > 0
    with pytest.raises(ValueError, match="unknown hotness ranking 'magic'"):
        hotness_order(indptr, indices, "magic")


def test_budget_in_rows():
    assert rows_for_budget(0.0, 1000, 400) == 0
    assert rows_for_budget(1 / 2**20, 1000, 512) == 2  # 1 KiB holds two 512-byte rows
    assert rows_for_budget(100.0, 1000, 400) == 1000
    assert rows_for_budget(-1, 1000, 400) == 1000


@settings(max_examples=40, deadline=None)
@given(
    num_nodes=st.integers(1, 40),
    dim=st.integers(1, 9),
    cached_fraction=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_fused_gather_equals_index_select_for_any_budget(num_nodes, dim, cached_fraction, data):
    table = torch.randn(num_nodes, dim)
    hot = np.random.default_rng(num_nodes).permutation(num_nodes)
    num_cached = int(round(cached_fraction * num_nodes))
    ids = torch.tensor(
        data.draw(st.lists(st.integers(0, num_nodes - 1), max_size=60)), dtype=torch.int64
    )
    cache = HotRowCache(table, hot, num_cached)
    assert torch.equal(cache.gather(ids), table.index_select(0, ids))
    expected_hits = int(np.isin(ids.numpy(), hot[:num_cached]).sum())
    assert cache.stats.hit_rows == expected_hits
    assert cache.stats.pcie_bytes == (ids.numel() - expected_hits) * dim * 4


@pytest.mark.parametrize("num_cached", [0, 3, 10])
def test_narrow_storage_gathers_into_fp32(num_cached):
    table = torch.randn(10, 5).to(torch.bfloat16)
    cache = HotRowCache(table, np.arange(10)[::-1], num_cached, out_dtype=torch.float32)
    ids = torch.tensor([9, 0, 9, 4, 1])
    out = cache.gather(ids)
    assert out.dtype == torch.float32
    assert torch.equal(out, table.index_select(0, ids).float())
    assert cache.stats.row_bytes == 10  # PCIe moves the narrow rows: 5 x 2 bytes


def test_cold_path_only_sees_misses():
    table = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    seen = []

    def cold(ids):
        seen.append(ids.clone())
        return table.index_select(0, ids)

    cache = HotRowCache(table, np.array([7, 3, 1]), 2, cold_gather=cold)
    out = cache.gather(torch.tensor([3, 5, 7, 5]))
    assert torch.equal(out, table[[3, 5, 7, 5]])
    assert seen[0].tolist() == [5, 5]
    assert cache.stats.hit_rate == pytest.approx(0.5)


def test_bad_cache_arguments():
    table = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="num_cached=5 is outside 0..4"):
        HotRowCache(table, np.arange(4), 5)
    with pytest.raises(ValueError, match="repeated node ids"):
        HotRowCache(table, np.array([1, 1, 2, 3]), 2)
    with pytest.raises(ValueError, match="must be 2-D"):
        HotRowCache(torch.zeros(4), np.arange(4), 1)
