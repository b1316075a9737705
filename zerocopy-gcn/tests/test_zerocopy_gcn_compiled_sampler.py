"""The compiled CPU sampler against the vectorised reference (zerocopy_gcn.sampling).

Validity is checked edge by edge against the CSR; the layout against the reference's
``unique_keep_prefix`` on the same sampled edges; uniformity with chi-square tests on rows
sampled thousands of times (fixed seeds, so deterministic).  Small ``min_chunk_*`` values make
the tiny test graphs take every parallel path (chunked sampling, parallel dedup).
"""

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from zerocopy_gcn.graph.csr import GraphFormatError
from zerocopy_gcn.sampling import (
    NeighborSampler,
    default_num_threads,
    make_sampler,
    unique_keep_prefix,
)
from zerocopy_gcn.sampling.compiled import CompiledNeighborSampler

# every phase split into many chunks, dedup across 3 owners
PARALLEL = {"num_threads": 3, "parallel_dedup": True, "min_chunk_nodes": 1, "min_chunk_edges": 1}
SERIAL = {"num_threads": 1}


def check_batch(indptr, indices, batch, fanouts):
    """Every block: edges exist, ``min(degree, fanout)`` distinct ones per destination (all of
    them when the fanout covers the row), destinations first among sources, sources distinct,
    new sources in order of first appearance (the reference's layout)."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    degree = np.diff(indptr)
    assert torch.equal(batch.blocks[-1].dst_nodes, batch.seeds)
    for hop, block in enumerate(reversed(batch.blocks)):
        fanout = fanouts[hop]
        src_local, dst_local = block.edge_index.numpy()
        src_nodes, eids = block.src_nodes.numpy(), block.edge_ids.numpy()
        dst_nodes = src_nodes[: block.num_dst]
        assert np.unique(src_nodes).shape[0] == src_nodes.shape[0]
        if eids.size:
            assert src_local.max() < block.num_src and dst_local.max() < block.num_dst
        # the edge is in its destination's row and its source is what the CSR stores there
        dst_global = dst_nodes[dst_local]
        assert np.all((eids >= indptr[dst_global]) & (eids < indptr[dst_global + 1]))
        assert np.array_equal(indices[eids], src_nodes[src_local])
        assert np.unique(eids).shape[0] == eids.shape[0]  # without replacement
        counts = np.bincount(dst_local, minlength=block.num_dst)
        want = degree[dst_nodes] if fanout < 0 else np.minimum(degree[dst_nodes], fanout)
        assert np.array_equal(counts, want)
        whole = want == degree[dst_nodes]
        assert np.array_equal(
            np.bincount(dst_local[whole[dst_local]], minlength=block.num_dst)[whole],
            degree[dst_nodes][whole],
        )
        reference_nodes, reference_local = unique_keep_prefix(
            torch.from_numpy(dst_nodes), torch.from_numpy(src_nodes[src_local])
        )
        assert np.array_equal(reference_nodes.numpy(), src_nodes)
        assert np.array_equal(reference_local.numpy(), src_local)
        if hop + 1 < len(fanouts):  # this hop's sources are the next hop's destinations
            assert np.array_equal(batch.blocks[len(fanouts) - 2 - hop].dst_nodes.numpy(), src_nodes)


def same_batch(a, b):
    return all(
        torch.equal(x.src_nodes, y.src_nodes)
        and torch.equal(x.edge_index, y.edge_index)
        and torch.equal(x.edge_ids, y.edge_ids)
        and x.num_dst == y.num_dst
        for x, y in zip(a.blocks, b.blocks, strict=True)
    )


def random_csr(rng, num_nodes, max_degree):
    """CSR without repeated edges: row v holds distinct in-neighbours."""
    degree = rng.integers(0, max_degree + 1, num_nodes)
    degree = np.minimum(degree, num_nodes)
    rows = [np.sort(rng.choice(num_nodes, d, replace=False)) for d in degree]
    indptr = np.concatenate([[0], np.cumsum(degree)]).astype(np.int64)
    indices = (np.concatenate(rows) if rows else np.empty(0)).astype(np.int32)
    return indptr, indices


@pytest.mark.parametrize("options", [SERIAL, PARALLEL], ids=["serial", "parallel"])
def test_blocks_valid_on_rmat_graph(small_graph, options):
    fanouts = [5, 3, 2]
    sampler = CompiledNeighborSampler(small_graph, fanouts, seed=1, **options)
    seeds = torch.from_numpy(small_graph.splits["train"][:80])
    batch = sampler.sample(seeds, epoch=0, step=0)
    check_batch(small_graph.indptr, small_graph.indices, batch, fanouts)
    assert torch.equal(batch.labels, torch.from_numpy(small_graph.label[seeds.numpy()]))
    # the parallel paths build exactly what one thread builds
    assert same_batch(
        batch, CompiledNeighborSampler(small_graph, fanouts, seed=1, **SERIAL).sample(seeds, 0, 0)
    )


@settings(max_examples=40, deadline=None)
@given(
    num_nodes=st.integers(1, 60),
    max_degree=st.integers(0, 25),
    fanouts=st.lists(st.integers(-1, 12), min_size=1, max_size=3),
    graph_seed=st.integers(0, 2**32 - 1),
    sampler_seed=st.integers(0, 2**31 - 1),
)
def test_property_valid_and_thread_independent(
    num_nodes, max_degree, fanouts, graph_seed, sampler_seed
):
    rng = np.random.default_rng(graph_seed)
    indptr, indices = random_csr(rng, num_nodes, max_degree)
    seeds = torch.from_numpy(rng.choice(num_nodes, rng.integers(1, num_nodes + 1), replace=False))
    serial = CompiledNeighborSampler(
        None, fanouts, seed=sampler_seed, indptr=indptr, indices=indices, **SERIAL
    ).sample(seeds, 3, 4)
    check_batch(indptr, indices, serial, fanouts)
    parallel = CompiledNeighborSampler(
        None, fanouts, seed=sampler_seed, indptr=indptr, indices=indices, **PARALLEL
    ).sample(seeds, 3, 4)
    assert same_batch(serial, parallel)


def test_deterministic_per_seed_epoch_step(small_graph):
    seeds = torch.arange(0, 60)
    sampler = CompiledNeighborSampler(small_graph, [4, 4], seed=7, **PARALLEL)
    a = sampler.sample(seeds, epoch=2, step=3)
    b = CompiledNeighborSampler(small_graph, [4, 4], seed=7, num_threads=2).sample(seeds, 2, 3)
    assert same_batch(a, b)
    for other in (
        sampler.sample(seeds, 2, 4),
        sampler.sample(seeds, 3, 3),
        CompiledNeighborSampler(small_graph, [4, 4], seed=8).sample(seeds, 2, 3),
    ):
        assert any(
            not torch.equal(x.edge_ids, y.edge_ids)
            for x, y in zip(a.blocks, other.blocks, strict=True)
        )


def many_copies_of_one_row(degree, copies):
    """``copies`` destination nodes whose rows all hold the same ``degree`` in-neighbours
    (node ids ``copies .. copies+degree-1``): one batch samples that row ``copies`` times,
    each time from its own stream."""
    indptr = np.minimum(np.arange(copies + degree + 1), copies).astype(np.int64) * degree
    indices = np.tile(np.arange(copies, copies + degree, dtype=np.int32), copies)
    return indptr, indices


def chi_square_p(counts):
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() / counts.size
    return chi2.sf(((counts - expected) ** 2 / expected).sum(), counts.size - 1)


def neighbour_counts(sampler_class, degree, fanout, copies, **options):
    """How often each of the row's ``degree`` positions was sampled over ``copies`` draws."""
    indptr, indices = many_copies_of_one_row(degree, copies)
    if sampler_class is NeighborSampler:
        indptr, indices = torch.from_numpy(indptr), torch.from_numpy(indices)
    block = (
        sampler_class(None, [fanout], seed=0, indptr=indptr, indices=indices, **options)
        .sample(torch.arange(copies))
        .blocks[0]
    )
    dst_nodes = block.dst_nodes.numpy()[block.edge_index[1].numpy()]
    positions = block.edge_ids.numpy() - np.asarray(indptr)[dst_nodes]
    return np.bincount(positions, minlength=degree)


@pytest.mark.parametrize(
    "degree,fanout",
    [(6, 2), (40, 5), (100, 70), (71, 70)],
    ids=["pairs", "floyd", "reservoir", "reservoir-one-left-out"],
)
def test_every_neighbour_equally_likely(degree, fanout):
    """Each neighbour is taken k/d of the time: chi-square over the per-neighbour counts
    (p > 1e-4; fixed seed, so the test is deterministic) and every count within 5 standard
    deviations, for the compiled sampler and the reference alike.  A sampler that skips the
    row's last position or draws from [0, d-1) (off by one) fails both by far.  Floyd and
    reservoir paths both covered."""
    # the reference takes ~1 s for 1500 rows at fanout 70 (a tensor step per draw): fewer rows
    for sampler_class, copies, options in (
        (CompiledNeighborSampler, 6000, {"num_threads": 2}),
        (NeighborSampler, max(300, 6000 // fanout), {}),
    ):
        counts = neighbour_counts(sampler_class, degree, fanout, copies, **options)
        assert counts.sum() == copies * fanout
        assert chi_square_p(counts) > 1e-4, sampler_class
        rate = copies * fanout / degree
        sd = np.sqrt(rate * (1 - fanout / degree))
        assert np.abs(counts - rate).max() < 5 * sd, sampler_class


def test_every_subset_equally_likely():
    """Degree 6, fanout 2: the 15 pairs come up equally often (chi-square, p > 1e-4)."""
    copies = 6000
    indptr, indices = many_copies_of_one_row(6, copies)
    block = (
        CompiledNeighborSampler(None, [2], seed=3, indptr=indptr, indices=indices)
        .sample(torch.arange(copies))
        .blocks[0]
    )
    positions = (block.edge_ids.numpy() - indptr[block.edge_index[1].numpy()]).reshape(-1, 2)
    assert (positions[:, 0] != positions[:, 1]).all()
    pairs = np.sort(positions, 1) @ np.array([6, 1])
    counts = np.bincount(pairs, minlength=36)[
        [a * 6 + b for a in range(6) for b in range(a + 1, 6)]
    ]
    assert counts.sum() == copies and chi_square_p(counts) > 1e-4


def test_errors_and_recovery(small_graph):
    sampler = CompiledNeighborSampler(small_graph, [3, 3], seed=0, num_threads=2)
    with pytest.raises(ValueError, match="distinct"):
        sampler.sample(torch.tensor([1, 2, 1]))
    with pytest.raises(IndexError, match="seed node ids"):
        sampler.sample(torch.tensor([0, small_graph.num_nodes]))
    # the map the failed batch used is dropped: the next batch is as from a fresh sampler
    seeds = torch.arange(30)
    assert same_batch(
        sampler.sample(seeds), CompiledNeighborSampler(small_graph, [3, 3], seed=0).sample(seeds)
    )
    bad = np.asarray(small_graph.indices).copy()
    bad[:] = small_graph.num_nodes  # a corrupt file read with validate=none
    corrupt = CompiledNeighborSampler(None, [3], indptr=small_graph.indptr, indices=bad)
    with pytest.raises(GraphFormatError, match="indices"):
        corrupt.sample(seeds)
    bad_indptr = np.asarray(small_graph.indptr).copy()
    bad_indptr[5] = bad.shape[0] + 10
    with pytest.raises(GraphFormatError, match="indptr"):
        CompiledNeighborSampler(None, [3], indptr=bad_indptr, indices=bad).sample(seeds)


def test_concurrent_callers_get_their_own_batches(small_graph):
    """Training's prefetch thread and the main thread may sample at once: each batch is the
    one a lone caller gets."""
    sampler = CompiledNeighborSampler(
        small_graph, [4, 4], seed=5, num_threads=2, min_chunk_nodes=8, min_chunk_edges=8
    )
    batches = [torch.arange(i * 20, i * 20 + 40) for i in range(8)]
    expected = [sampler.sample(seeds, 0, step) for step, seeds in enumerate(batches)]
    results = {}

    def work(offset):
        for step in range(offset, len(batches), 2):
            for _ in range(3):
                results[step] = sampler.sample(batches[step], 0, step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(same_batch(results[step], expected[step]) for step in range(len(batches)))


def test_make_sampler_kinds(small_graph):
    assert isinstance(make_sampler("auto", small_graph, [3]), CompiledNeighborSampler)
    assert isinstance(make_sampler("reference", small_graph, [3]), NeighborSampler)
    assert (
        make_sampler("compiled", small_graph, [3], num_threads=0).num_threads
        == default_num_threads()
    )
    from trilab.errors import UserError

    with pytest.raises(UserError, match="sampler.kind"):
        make_sampler("fast", small_graph, [3])


def test_sampler_bench_rows_and_bounded_load(small_graph):
    import os
    from pathlib import Path

    from trilab.bench import load_script, markdown_table

    sampler_bench = load_script(
        Path(__file__).resolve().parents[1] / "benchmarks" / "sampler_rates.py"
    )
    loads = list(sampler_bench.SAMPLER_LOADS)
    rows, skipped = sampler_bench.bench_cpu_samplers(
        small_graph, [3, 2], 50, 2, [2, 1], loads, repeats=2, seconds_per_run=5.0
    )
    assert not skipped
    assert {(r["sampler"], r["threads"], r["load"]) for r in rows} == {
        (kind, threads, load)
        for kind in ("compiled", "reference")
        for threads in (2, 1)
        for load in loads
    }
    assert all(r["edges_per_s"] > 0 and len(r["runs"]) == 2 for r in rows)
    assert all(r["speedup_vs_reference"] > 0 for r in rows)
    table = "\n".join(markdown_table(sampler_bench.ordered(rows), sampler_bench.COLUMNS))
    assert table.count("| compiled | cpu |") == 6 and "busy" in table
    with sampler_bench.cpu_load("busy") as pid:
        assert os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped with the runs


@pytest.mark.parametrize("kind", ["compiled", "reference"])
def test_training_uses_the_configured_sampler(tmp_path, monkeypatch, kind):
    from pathlib import Path

    from trilab.testing import compose_config
    from zerocopy_gcn.training import train

    monkeypatch.chdir(tmp_path)
    configs = Path(__file__).resolve().parents[1] / "configs"
    cfg = compose_config(
        configs,
        [
            "data.num_nodes=1500",
            "data.avg_degree=10",
            "data.feat_dim=16",
            "data.num_classes=4",
            "fanouts=[5,5]",
            "model.hidden=16",
            "batch_size=300",
            "tensorboard=false",
            "device=cpu",
            "epochs=1",
            f"data.root={tmp_path / 'data'}",
            f"sampler.kind={kind}",
            "sampler.num_threads=2",
        ],
    )
    metrics = train(cfg)
    assert metrics["history"][0]["sample_s"] > 0 and 0 <= metrics["final_test_acc"] <= 1
    expected = (
        "CompiledNeighborSampler on cpu, 2 threads"
        if kind == "compiled"
        else "NeighborSampler on cpu"
    )
    assert f"sampler: {expected}" in (tmp_path / "run.log").read_text()
