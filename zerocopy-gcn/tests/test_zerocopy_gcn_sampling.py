import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import SAGEConv

from zerocopy_gcn.sampling import NeighborSampler, sample_neighbors, unique_keep_prefix


def _edge_set(graph):
    dst = np.repeat(np.arange(graph.num_nodes), graph.degrees())
    return set(zip(np.asarray(graph.indices).tolist(), dst.tolist(), strict=True))


def _check_batch(graph, batch, fanouts, edges):
    indptr = np.asarray(graph.indptr)
    seeds = batch.seeds
    assert torch.equal(batch.blocks[-1].dst_nodes, seeds)
    for hop, block in enumerate(reversed(batch.blocks)):
        src, dst = block.edge_index
        if src.numel():
            assert src.max() < block.num_src and dst.max() < block.num_dst
        # dst nodes are a prefix of src nodes, src nodes are distinct
        assert torch.unique(block.src_nodes).shape[0] == block.num_src
        g_src, g_dst = block.src_nodes[src], block.src_nodes[dst]
        for u, v in zip(g_src.tolist(), g_dst.tolist(), strict=True):
            assert (u, v) in edges
        # edge ids point at the sampled edges, each at most once (without replacement)
        eids = block.edge_ids.numpy()
        assert len(set(eids.tolist())) == len(eids)
        assert np.array_equal(np.asarray(graph.indices)[eids], g_src.numpy())
        counts = torch.bincount(dst, minlength=block.num_dst).numpy()
        deg = np.diff(indptr)[block.dst_nodes.numpy()]
        assert np.array_equal(counts, np.minimum(deg, fanouts[hop]))
        if hop + 1 < len(fanouts):
            assert torch.equal(batch.blocks[len(fanouts) - 2 - hop].dst_nodes, block.src_nodes)


def test_blocks_are_valid(small_graph):
    fanouts = [5, 3]
    sampler = NeighborSampler(small_graph, fanouts, seed=1)
    seeds = torch.from_numpy(small_graph.splits["train"][:40])
    batch = sampler.sample(seeds, epoch=0, step=0)
    _check_batch(small_graph, batch, fanouts, _edge_set(small_graph))
    assert torch.equal(batch.labels, torch.from_numpy(small_graph.label[seeds.numpy()]))


@settings(max_examples=15, deadline=None)
@given(
    fanout_a=st.integers(1, 8),
    fanout_b=st.integers(1, 8),
    n_seeds=st.integers(1, 50),
    seed=st.integers(0, 10_000),
)
def test_property_sampled_edges(small_graph_dir, fanout_a, fanout_b, n_seeds, seed):
    from zerocopy_gcn.graph import load_graph

    graph = load_graph(small_graph_dir, validate="none")
    rng = np.random.default_rng(seed)
    seeds = torch.from_numpy(rng.choice(graph.num_nodes, n_seeds, replace=False))
    sampler = NeighborSampler(graph, [fanout_a, fanout_b], seed=seed)
    _check_batch(graph, sampler.sample(seeds), [fanout_a, fanout_b], _edge_set(graph))


def test_deterministic_per_seed_epoch_step(small_graph):
    seeds = torch.arange(0, 60)
    a = NeighborSampler(small_graph, [4, 4], seed=7).sample(seeds, epoch=2, step=3)
    b = NeighborSampler(small_graph, [4, 4], seed=7).sample(seeds, epoch=2, step=3)
    c = NeighborSampler(small_graph, [4, 4], seed=7).sample(seeds, epoch=2, step=4)
    for x, y in zip(a.blocks, b.blocks, strict=True):
        assert torch.equal(x.edge_index, y.edge_index) and torch.equal(x.src_nodes, y.src_nodes)
    assert any(
        not torch.equal(x.edge_ids, y.edge_ids) for x, y in zip(a.blocks, c.blocks, strict=True)
    )


def test_without_replacement_is_uniform():
    # one node with 6 neighbours, fanout 2: each of the 15 pairs about equally often
    indptr = torch.tensor([0, 6])
    gen = torch.Generator().manual_seed(0)
    nodes = torch.zeros(3000, dtype=torch.long)
    dst, eids = sample_neighbors(indptr, nodes, 2, gen)
    pairs = eids.view(-1, 2).sort(1).values
    assert (pairs[:, 0] != pairs[:, 1]).all()
    counts = torch.unique(pairs, dim=0, return_counts=True)[1]
    assert counts.shape[0] == 15 and counts.min() > 140 and counts.max() < 270


def test_unique_keep_prefix_and_duplicate_seeds():
    nodes, local = unique_keep_prefix(torch.tensor([5, 2, 9]), torch.tensor([9, 7, 2, 7, 1]))
    assert nodes.tolist() == [5, 2, 9, 7, 1] and local.tolist() == [2, 3, 1, 3, 4]
    sampler = NeighborSampler(
        None, [2], indptr=torch.tensor([0, 1, 2]), indices=torch.tensor([1, 0])
    )
    with pytest.raises(ValueError, match="distinct"):
        sampler.sample(torch.tensor([0, 0]))


def test_pyg_sageconv_consumes_blocks(small_graph):
    batch = NeighborSampler(small_graph, [5, 5], seed=0).sample(torch.arange(10))
    x = torch.from_numpy(np.asarray(small_graph.feat))[batch.input_nodes]
    conv1, conv2 = SAGEConv(small_graph.feat_dim, 8), SAGEConv(8, 3)
    b0, b1 = batch.blocks
    h = conv1((x, x[: b0.num_dst]), b0.edge_index)
    out = conv2((h, h[: b1.num_dst]), b1.edge_index)
    assert out.shape == (10, 3)


def _same_batch(a, b):
    return all(
        torch.equal(x.src_nodes, y.src_nodes) and torch.equal(x.edge_ids, y.edge_ids)
        for x, y in zip(a.blocks, b.blocks, strict=True)
    )


@pytest.mark.parametrize("kind", ["reference", "compiled"])
def test_batch_key_is_the_one_seed_rule(small_graph, kind):
    """Both samplers draw batch (epoch, step) of rank r from batch_key(seed, epoch, step, r):
    each field changes the batch, equal fields give the same batch."""
    from zerocopy_gcn.sampling import BlockSampler, make_sampler

    seeds = torch.from_numpy(small_graph.splits["train"][:60])
    base = make_sampler(kind, small_graph, [4, 4], seed=3, rank=0)
    assert isinstance(base, BlockSampler)
    batch = base.sample(seeds, epoch=1, step=2)
    assert _same_batch(batch, make_sampler(kind, small_graph, [4, 4], seed=3).sample(seeds, 1, 2))
    for seed, rank, epoch, step in [(4, 0, 1, 2), (3, 1, 1, 2), (3, 0, 2, 2), (3, 0, 1, 3)]:
        other = make_sampler(kind, small_graph, [4, 4], seed=seed, rank=rank)
        assert not _same_batch(batch, other.sample(seeds, epoch=epoch, step=step))


def test_batch_key_seeds_the_reference_generator():
    from zerocopy_gcn.sampling import batch_key

    sampler = NeighborSampler(None, [2], indptr=torch.tensor([0, 0]), indices=torch.tensor([0]))
    sampler.seed, sampler.rank = 5, 2
    assert sampler.generator(epoch=-1, step=7).initial_seed() == batch_key(5, -1, 7, 2)
    # the folding keeps fields apart where a (seed * A + epoch) sum would not
    assert (
        len(
            {
                batch_key(s, e, t, r)
                for s in range(3)
                for e in range(3)
                for t in range(3)
                for r in range(3)
            }
        )
        == 81
    )
    assert 0 <= batch_key(-1, -1, -1, -1) < 2**64


def test_seed_batches_follow_the_epoch_order():
    from trilab.loop import epoch_order
    from zerocopy_gcn.sampling import seed_batches

    nodes = np.arange(100, 150)
    batches = seed_batches(nodes, 16, epoch=2, seed=9, rank=1, world_size=2)
    expected = nodes[epoch_order(50, 9, 2, rank=1, world_size=2)]
    assert [b.shape[0] for b in batches] == [16, 9]
    assert torch.equal(torch.cat(batches), torch.from_numpy(expected))
    assert torch.equal(torch.cat(seed_batches(nodes, 7, shuffle=False)), torch.from_numpy(nodes))
