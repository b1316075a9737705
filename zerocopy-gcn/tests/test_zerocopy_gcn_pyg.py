"""zerocopy-gcn behind PyG's FeatureStore, GraphStore and BaseSampler (issue 29).

The store contract follows what PyG's own tests (test/data/test_feature_store.py) ask of a
feature store: put/get/update/remove round trips, TensorAttr defaults and partially specified
attributes (views), and multi-get equal to single gets.  The sampler's batches through
NodeLoader are the project's own sampler's batches for the same (seed, epoch, step).
"""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import TensorAttr
from torch_geometric.data.feature_store import AttrView
from torch_geometric.data.graph_store import EdgeLayout
from torch_geometric.loader import NodeLoader
from torch_geometric.sampler import NodeSamplerInput

from zerocopy_gcn.graph import generate_rmat, load_graph, preset_spec
from zerocopy_gcn.graph.csr import GraphFormatError
from zerocopy_gcn.pyg import FolderFeatureStore, FolderGraphStore, FolderNeighborSampler
from zerocopy_gcn.sampling import make_sampler

PROJECT = Path(__file__).resolve().parents[1]
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def stores(small_graph_dir):
    feature_store = FolderFeatureStore(small_graph_dir)
    graph_store = FolderGraphStore(small_graph_dir)
    yield feature_store, graph_store
    feature_store.close()


def _graph_with_dtype(folder, feat_dtype):
    spec = preset_spec(
        "products_like", num_nodes=200, avg_degree=6, feat_dim=12, num_classes=3,
        feat_dtype=feat_dtype, chunk_pairs=500, seed=1,
    )  # fmt: skip
    generate_rmat(folder, spec, name=f"g_{feat_dtype}", progress=False)
    return folder


# --- feature store: the folder's tables ----------------------------------------------------


@pytest.mark.parametrize("feat_dtype", ["float32", "float16", "bfloat16"])
def test_features_in_the_folders_dtype(tmp_path, feat_dtype):
    folder = _graph_with_dtype(tmp_path / feat_dtype, feat_dtype)
    graph = load_graph(folder)
    store = FolderFeatureStore(folder)
    expected = graph.feat_tensor()
    assert expected.dtype == {"float32": torch.float32, "float16": torch.float16,
                              "bfloat16": torch.bfloat16}[feat_dtype]  # fmt: skip
    ids = torch.tensor([5, 0, 199, 5])
    rows = store[None, "x", ids]
    assert rows.dtype == expected.dtype and torch.equal(rows, expected[ids])
    assert torch.equal(store[None, "x", None], expected)  # the memory map itself, whole
    assert torch.equal(store[None, "y", ids], torch.from_numpy(graph.label)[ids])
    assert store.get_tensor_size(None, "x") == (200, 12)
    store.close()


def test_index_forms_pyg_passes(stores, small_graph):
    feature_store, _ = stores
    table = small_graph.feat_tensor()
    ids = torch.tensor([3, 1, 4, 1, 5])
    assert torch.equal(feature_store.get_tensor(None, "x", ids), table[ids])
    assert torch.equal(feature_store.get_tensor(None, "x", slice(10, 20)), table[10:20])
    assert torch.equal(feature_store.get_tensor(None, "x", None), table)
    mask = torch.zeros(small_graph.num_nodes, dtype=torch.bool)
    mask[[2, 7]] = True
    assert torch.equal(feature_store.get_tensor(None, "x", mask), table[[2, 7]])
    assert feature_store.get_tensor(None, "x", torch.tensor([], dtype=torch.long)).shape == (
        0,
        small_graph.feat_dim,
    )


def test_fetch_chosen_as_train_py_chooses(small_graph_dir, small_graph):
    """`fetch` takes a mode or train.py's fetch.* keys: a hot-row cache in front of the gather
    gives the same rows; an unknown mode is refused by name."""
    store = FolderFeatureStore(
        small_graph_dir, fetch={"mode": "conventional", "cache_fraction": 0.2}
    )
    assert type(store.fetcher).__name__ == "CachedFetcher"
    ids = torch.randint(0, 600, (300,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(store[None, "x", ids], small_graph.feat_tensor()[ids])
    store.close()
    with pytest.raises(ValueError, match="'fast'"):
        FolderFeatureStore(small_graph_dir, fetch="fast")


def test_multi_get_equals_single_gets(stores):
    feature_store, _ = stores
    ids = torch.tensor([9, 8, 7, 100, 9])
    attrs = [TensorAttr(None, "y", ids), TensorAttr(None, "x", ids), TensorAttr(None, "x", None)]
    many = feature_store.multi_get_tensor(attrs)
    for attr, tensor in zip(attrs, many, strict=True):
        assert torch.equal(tensor, feature_store.get_tensor(attr))
    # the loader's form: every attribute the store holds, at the batch's nodes
    assert {a.attr_name for a in feature_store.get_all_tensor_attrs()} == {"x", "y"}


# --- feature store: PyG's contract -------------------------------------------------------


def test_put_get_update_remove_round_trip(small_graph_dir):
    store = FolderFeatureStore(small_graph_dir)
    tensor = torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])
    index = torch.tensor([0, 1, 2])
    attr = TensorAttr("A", "feat", index)
    assert store.put_tensor(tensor, attr)
    assert torch.equal(store.get_tensor(attr), tensor)
    assert torch.equal(store.get_tensor("A", "feat", index=torch.tensor([0, 2])), tensor[[0, 2]])
    assert store.get_tensor_size("A", "feat") == (3, 3)
    # rows of an in-memory attribute can be written
    store.put_tensor(torch.full((1, 3), 7.0), "A", "feat", torch.tensor([1]))
    assert torch.equal(store.get_tensor("A", "feat", None)[1], torch.full((3,), 7.0))
    assert store.update_tensor(torch.tensor([0, 2]), "A", "feat", None)
    assert torch.equal(store.get_tensor("A", "feat", None), torch.tensor([0, 2]))
    assert store.remove_tensor("A", "feat", None)
    with pytest.raises(KeyError, match="'feat'"):
        store.get_tensor(attr)
    assert store.get_tensor_size("A", "feat") is None
    assert not store.remove_tensor("A", "feat", None)
    # the folder's own tables are read-only: rows cannot be written, the whole can be replaced
    with pytest.raises(ValueError, match="read-only"):
        store.put_tensor(torch.zeros(2, 24), None, "x", torch.tensor([0, 5]))
    store.put_tensor(torch.ones(600, 2), None, "x", None)
    assert torch.equal(store[None, "x", torch.tensor([4])], torch.ones(1, 2))
    store.remove_tensor(None, "x", None)  # back to the folder's table
    assert store[None, "x", torch.tensor([4])].shape == (1, 24)
    store.close()


def test_tensor_attr_defaults_views_and_indexing(small_graph_dir, small_graph):
    store = FolderFeatureStore(small_graph_dir)
    table = small_graph.feat_tensor()
    index = torch.tensor([0, 1, 2])
    # a TensorAttr with only some fields set is a view; calling or indexing it completes it
    view = store.view(group_name=None)
    view.attr_name = "x"
    view["index"] = index
    assert view == AttrView(store, TensorAttr(None, "x", index))
    assert torch.equal(view(), table[index])
    assert torch.equal(store[None, "x", index], table[index])
    assert torch.equal(store[None, "x", None], table)
    assert torch.equal(store[None, "x", :], table)
    assert torch.equal(store.view(group_name=None)["x"][:], table)
    assert torch.equal(store.view(group_name=None).x[index], table[index])
    assert torch.equal(store.view(group_name=None).y[:], torch.from_numpy(small_graph.label))
    assert isinstance(store.view(group_name=None).x, AttrView)
    # an attribute put into a group, then deleted through the mapping forms
    store["B", "h", index] = table[:3]
    assert torch.equal(store["B"].h[:], table[:3])
    del store["B", "h", index]
    with pytest.raises(KeyError):
        _ = store["B", "h", index]
    with pytest.raises(ValueError, match="fully"):
        store.get_tensor(TensorAttr(attr_name="x"))  # index left UNSET
    store.close()


# --- graph store --------------------------------------------------------------------------


def test_graph_store_serves_the_folder_csr_without_copy(stores, small_graph):
    _, graph_store = stores
    (attr,) = graph_store.get_all_edge_attrs()
    assert attr.layout == EdgeLayout.CSC and attr.size == (600, 600)
    row, colptr = graph_store.get_edge_index(None, "csc")
    # the memory-mapped arrays themselves: same memory, nothing copied
    assert row.data_ptr() == graph_store.graph.indices.ctypes.data
    assert colptr.data_ptr() == graph_store.graph.indptr.ctypes.data
    dst = np.repeat(np.arange(600), np.diff(small_graph.indptr))
    src_coo, dst_coo = graph_store.get_edge_index(None, "coo")
    assert np.array_equal(dst_coo.numpy(), dst)
    assert np.array_equal(src_coo.numpy(), small_graph.indices)
    rowptr, col = graph_store.get_edge_index(None, "csr")
    for node in (0, 17, 599):  # each source's out-edges: the destinations that list it
        expected = np.sort(dst[np.asarray(small_graph.indices) == node])
        assert np.array_equal(np.sort(col[rowptr[node] : rowptr[node + 1]].numpy()), expected)
    # PyG's own conversions read the stored CSC
    coo_row, coo_col, _ = graph_store.coo()
    assert np.array_equal(coo_col.numpy(), dst)
    with pytest.raises(KeyError):
        graph_store.get_edge_index(("a", "to", "b"), "coo")


# --- sampler ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["compiled", "reference"])
def test_node_loader_batches_are_the_projects_batches(stores, small_graph, kind):
    """Through NodeLoader, batch `step` of epoch `epoch` holds the nodes and edges that the
    project's sampler gives for the same (seed, epoch, step)."""
    feature_store, graph_store = stores
    fanouts = [4, 3]
    sampler = FolderNeighborSampler((feature_store, graph_store), fanouts, seed=5, kind=kind)
    train = torch.from_numpy(small_graph.splits["train"])
    loader = NodeLoader(
        (feature_store, graph_store), node_sampler=sampler, input_nodes=train, batch_size=64
    )
    own = make_sampler(kind, small_graph, fanouts, seed=5)
    table = small_graph.feat_tensor()
    for epoch in (0, 2):
        sampler.set_epoch(epoch)
        steps = 0
        for step, data in enumerate(loader):
            steps += 1
            seeds = train[step * 64 : (step + 1) * 64]
            batch = own.sample(seeds, epoch=epoch, step=step)
            hops = batch.blocks[::-1]
            assert torch.equal(data.n_id, batch.blocks[0].src_nodes)
            assert torch.equal(data.n_id[: data.batch_size], seeds)
            expected_edges = torch.cat([b.edge_index for b in hops], dim=1)
            assert torch.equal(data.edge_index, expected_edges)
            assert torch.equal(data.e_id, torch.cat([b.edge_ids for b in hops]))
            # global ids: every edge is stored in the folder (source in the destination's row)
            src, dst = data.n_id[data.edge_index[0]], data.n_id[data.edge_index[1]]
            assert torch.equal(
                torch.from_numpy(np.asarray(small_graph.indices))[data.e_id].long(), src
            )
            starts = torch.from_numpy(np.asarray(small_graph.indptr))
            assert bool(((starts[dst] <= data.e_id) & (data.e_id < starts[dst + 1])).all())
            assert data.num_sampled_nodes[0] == seeds.shape[0]
            assert sum(data.num_sampled_nodes) == data.num_nodes
            assert data.num_sampled_edges == [b.edge_ids.shape[0] for b in hops]
            assert torch.equal(data.x, table[data.n_id])
            assert torch.equal(data.y, torch.from_numpy(small_graph.label)[data.n_id])
        assert steps == -(-train.shape[0] // 64)


def test_trim_to_layer_runs_on_the_batches(stores):
    from torch_geometric.nn.models import GraphSAGE

    feature_store, graph_store = stores
    sampler = FolderNeighborSampler(graph_store, [5, 5], seed=0)
    data = next(
        iter(NodeLoader((feature_store, graph_store), sampler, torch.arange(30), batch_size=30))
    )
    model = GraphSAGE(24, 16, num_layers=2, out_channels=5)
    out = model(
        data.x, data.edge_index,
        num_sampled_nodes_per_hop=data.num_sampled_nodes,
        num_sampled_edges_per_hop=data.num_sampled_edges,
    )  # fmt: skip
    assert out.shape[0] >= 30 and out.shape[1] == 5


def _example():
    from trilab.bench import load_script

    return load_script(PROJECT / "examples" / "pyg_sage.py")


def test_blocks_forward_is_train_pys_model(stores, small_graph):
    """examples/pyg_sage.py's ``forward_blocks``: PyG's GraphSAGE over a NodeLoader batch gives
    what train.py's block model gives over the project's blocks of the same (seed, epoch, step),
    with the same weights (float64, < 1e-12); ``forward_trim``, GraphSAGE's own forward over the
    same batch, is another computation, so this test can fail."""
    from torch_geometric.nn.models import GraphSAGE

    from zerocopy_gcn.models import build_model

    example = _example()
    feature_store, graph_store = stores
    fanouts = [4, 3, 2]
    sampler = FolderNeighborSampler(graph_store, fanouts, seed=3)
    train = torch.from_numpy(small_graph.splits["train"])
    loader = NodeLoader((feature_store, graph_store), sampler, train, batch_size=48)
    torch.manual_seed(0)
    block_model = build_model("sage", 24, 16, 5, len(fanouts)).double().eval()
    graph_sage = GraphSAGE(24, 16, num_layers=len(fanouts), out_channels=5).double().eval()
    graph_sage.load_state_dict(block_model.state_dict())
    own = make_sampler("compiled", small_graph, fanouts, seed=3)
    sampler.set_epoch(1)
    with torch.no_grad():
        for step, data in enumerate(loader):
            batch = own.sample(train[step * 48 : (step + 1) * 48], epoch=1, step=step)
            expected = block_model(data.x.double(), batch.blocks)
            data.x = data.x.double()
            got = example.forward_blocks(graph_sage, data)
            assert got.shape == (data.batch_size, 5)
            assert torch.allclose(got, expected, rtol=0, atol=1e-12)
            trimmed = example.forward_trim(graph_sage, data)
            assert (trimmed - expected).abs().max() > 1e-6


def test_blocks_forward_applies_graphsages_layers_between_convs():
    """``forward_blocks`` runs GraphSAGE's norm, activation and dropout between layers, as
    GraphSAGE's own forward does: with a norm, or dropout in training, the output changes."""
    from torch_geometric.data import Data
    from torch_geometric.nn.models import GraphSAGE

    example = _example()
    torch.manual_seed(1)
    data = Data(
        x=torch.randn(9, 4, dtype=torch.float64),
        edge_index=torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 1, 2, 3, 1, 0, 2]]),
        num_sampled_nodes=[1, 3, 5],
        num_sampled_edges=[2, 6],
        batch_size=1,
    )
    plain = GraphSAGE(4, 6, num_layers=2, out_channels=2).double().eval()
    normed = GraphSAGE(4, 6, num_layers=2, out_channels=2, norm="layer").double().eval()
    normed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        assert not torch.allclose(
            example.forward_blocks(plain, data), example.forward_blocks(normed, data)
        )
        dropping = GraphSAGE(4, 6, num_layers=2, out_channels=2, dropout=0.9).double()
        dropping.load_state_dict(plain.state_dict())
        assert torch.equal(
            example.forward_blocks(dropping.eval(), data), example.forward_blocks(plain, data)
        )
        assert not torch.equal(
            example.forward_blocks(dropping.train(), data), example.forward_blocks(plain, data)
        )


def test_step_rule_in_dataloader_workers(monkeypatch, stores):
    """PyTorch gives batch i to worker i % W, so the worker's own count recovers step i."""
    _, graph_store = stores
    sampler = FolderNeighborSampler(graph_store, [3], seed=0)

    class Worker:
        def __init__(self, id, num_workers):
            self.id, self.num_workers = id, num_workers

    steps = []
    for worker_id in (0, 1, 2):
        copy = FolderNeighborSampler(graph_store, [3], seed=0)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda w=worker_id: Worker(w, 3))
        steps += [copy._next_step() for _ in range(3)]
    assert sorted(steps) == list(range(9))
    monkeypatch.undo()
    assert [sampler._next_step() for _ in range(3)] == [0, 1, 2]
    sampler.set_epoch(4)
    assert sampler._next_step() == 0 and sampler.epoch == 4


def test_dataloader_workers_give_the_same_batches(small_graph_dir):
    """Two forked workers (each rebuilding the thread pools it inherits without threads) give
    the batches of the loader's own process, in order."""
    feature_store = FolderFeatureStore(small_graph_dir)
    graph_store = FolderGraphStore(small_graph_dir)
    sampler = FolderNeighborSampler(graph_store, [4, 3], seed=2)
    nodes = torch.arange(0, 600, 2)

    def batches(workers):
        sampler.set_epoch(1)
        loader = NodeLoader(
            (feature_store, graph_store), sampler, nodes, batch_size=50, num_workers=workers
        )
        return [(data.n_id, data.edge_index, data.x) for data in loader]

    alone, forked = batches(0), batches(2)
    assert len(alone) == len(forked) == 6
    for a, b in zip(alone, forked, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    feature_store.close()


def test_a_cuda_store_refuses_to_fetch_in_a_forked_worker(small_graph_dir, monkeypatch):
    """A forked DataLoader worker cannot use CUDA: a CUDA store says so in one sentence that
    names the way out, instead of a CUDA initialisation error from inside the fetch."""
    import zerocopy_gcn.pyg.feature_store as module

    store = FolderFeatureStore(small_graph_dir, fetch="conventional", device="cuda")
    monkeypatch.setattr(module.os, "getpid", lambda: -1)  # as in a forked worker
    with pytest.raises(RuntimeError, match="cannot fetch in a DataLoader worker.*num_workers=0"):
        store.get_tensor(TensorAttr(None, "x", torch.arange(3)))
    monkeypatch.undo()
    store.close()


def test_bad_fanouts_are_refused_when_the_sampler_is_made(stores):
    from trilab.errors import UserError

    _, graph_store = stores
    for fanouts in ([], [5, -3], [1.5]):
        with pytest.raises(UserError, match="fanouts must list one neighbour count per layer"):
            FolderNeighborSampler(graph_store, fanouts)
    assert FolderNeighborSampler(graph_store, [-1, 0]).num_neighbors == [-1, 0]


def test_edges_are_refused_with_what_is_supported(stores):
    _, graph_store = stores
    with pytest.raises(NotImplementedError, match="sample_from_nodes"):
        FolderNeighborSampler(graph_store, [2]).sample_from_edges(None)
    with pytest.raises(TypeError, match="FolderGraphStore"):
        FolderNeighborSampler(object(), [2])


# --- hostile input (issue 30 §3) -----------------------------------------------------------


def test_a_folder_the_store_cannot_open(tmp_path, small_graph_dir):
    missing = tmp_path / "nothing_here"
    for store_class in (FolderFeatureStore, FolderGraphStore):
        with pytest.raises(GraphFormatError, match="nothing_here: not a folder"):
            store_class(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GraphFormatError, match="meta.json: missing"):
        FolderFeatureStore(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in Path(small_graph_dir).iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "feat.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(GraphFormatError, match="feat.npy"):
        FolderFeatureStore(broken)


def test_example_answers_a_bad_folder_in_one_line(tmp_path):
    import os

    from trilab.testing import user_error_of

    # PyG's import warns about torch.jit.script on every run; the message is what is checked
    env = {**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"}
    example = PROJECT / "examples" / "pyg_sage.py"
    stderr = user_error_of([sys.executable, str(example), str(tmp_path / "none")], env=env)
    assert f"{tmp_path / 'none'}: not a folder" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--fanouts", "5", "-2"], "--fanouts: each is -1 (all neighbours) or a count >= 0"),
        (["--hidden", "0"], "--hidden must be at least 1"),
        (["--lr", "nan"], "--lr must be > 0 and --dropout in [0, 1)"),
    ],
)
def test_example_refuses_bad_settings_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        _example().parse_args(["some/folder", *args])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f": error: {message}")


def test_unknown_attribute_is_pygs_key_error_naming_it(stores):
    feature_store, _ = stores
    with pytest.raises(KeyError, match="'features'.*has \\['x', 'y'\\]"):
        feature_store.get_tensor(None, "features", torch.tensor([0]))
    with pytest.raises(KeyError, match="'x' of group 'paper'"):
        feature_store.multi_get_tensor([TensorAttr("paper", "x", torch.tensor([0]))])


def test_node_id_out_of_range_is_named(stores):
    feature_store, graph_store = stores
    with pytest.raises(IndexError, match="node id 600 .* out of range \\[0, 600\\)"):
        feature_store.get_tensor(None, "x", torch.tensor([1, 600]))
    with pytest.raises(IndexError, match="node id -1 .* out of range"):
        feature_store.get_tensor(None, "y", torch.tensor([-1]))
    sampler = FolderNeighborSampler(graph_store, [2])
    with pytest.raises(IndexError, match="seed node id 700 is out of range \\[0, 600\\)"):
        sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([0, 700])))


# --- the worked example against train.py --------------------------------------------------


def test_example_reaches_train_py_accuracy(tmp_path, small_graph_dir):
    """examples/pyg_sage.py (PyG's GraphSAGE + NodeLoader) and train.py (the project's block
    model and loop) on the same graph folder, seed, epochs, fanouts, width and learning rate:
    test accuracy within 0.1 of each other, 12 of the 120 test nodes (different models'
    initialisation, batch order and message-passing graph: not the same numbers, the same
    learning)."""
    from trilab.testing import compose_config
    from zerocopy_gcn.training import train

    settings = ["epochs=5", "lr=0.01", "batch_size=64", "fanouts=[5,5]", "model.hidden=32"]
    cfg = compose_config(
        PROJECT / "configs",
        [
            *settings,
            "data=folder",
            f"data.path={small_graph_dir}",
            "device=cpu",
            "tensorboard=false",
            "eval_batch_size=600",
        ],
    )
    run = tmp_path / "train_py"
    run.mkdir()
    with contextlib.chdir(run):
        reference = train(cfg)
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "examples" / "pyg_sage.py"),
            str(small_graph_dir),
            "--epochs",
            "5",
            "--lr",
            "0.01",
            "--batch-size",
            "64",
            "--fanouts",
            "5",
            "5",
            "--hidden",
            "32",
            "--json",
            str(tmp_path / "pyg.json"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    example = json.loads((tmp_path / "pyg.json").read_text())
    assert example["test_acc"] > reference["chance_acc"] + 0.1, (example, reference)
    assert abs(example["test_acc"] - reference["final_test_acc"]) <= 0.1, (
        example["test_acc"],
        reference["final_test_acc"],
    )


def test_loader_benchmark_reports_every_path(tmp_path):
    """benchmarks/pyg_loader.py --quick: a row per path with its epoch time and ratio, the
    loader's share, the target verdict and the layer work, in JSON and Markdown; PyG's own
    NeighborSampler gets its row with the reason it cannot sample here."""
    from trilab.bench import load_script

    bench = load_script(PROJECT / "benchmarks" / "pyg_loader.py")
    result = bench.main(["--quick", "--out", str(tmp_path), "--data-root", str(tmp_path / "d")])
    rows = {(row["path"], row["sampler"]): row for row in result["rows"]}
    timed = [bench.TRAIN_PY, bench.BLOCKS, bench.TRIM, bench.LOADER_ALONE]
    assert [path for path, _ in rows][:4] == timed
    for (path, _), row in rows.items():
        if path in timed:
            assert row["epoch_s"] > 0 and row["loader_s"] > 0 and row["runs"] == 1
    assert rows[(bench.TRAIN_PY, "compiled")]["vs_train_py"] == 1.0
    saved = json.loads((tmp_path / "pyg_loader.json").read_text())
    work = saved["layer_work"]
    assert 0 < work["blocks_rows"][-1] <= 200  # the seeds of one batch
    assert all(t >= b for t, b in zip(work["trim_rows"], work["blocks_rows"], strict=True))
    assert work["trim_rows"][0] > work["blocks_rows"][0]
    markdown = (tmp_path / "pyg_loader.md").read_text()
    assert "same model (layers=blocks)" in markdown and "target: at most +10%" in markdown
    builtin = rows[("PyG NodeLoader", "PyG NeighborSampler (built-in)")]
    try:
        import pyg_lib  # noqa: F401
    except ImportError:
        assert builtin["note"].startswith("cannot sample here: ImportError")


# --- GPU paths (run by make gpu-check where a GPU is lent) ---------------------------------


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fetch", ["conventional", "gpu", "zerocopy",
                                   {"mode": "zerocopy", "cache_fraction": 0.2}])  # fmt: skip
def test_gpu_fetch_paths_equal_the_table(small_graph_dir, small_graph, fetch):
    if fetch == "zerocopy" or isinstance(fetch, dict):
        pytest.importorskip("cupy")
    store = FolderFeatureStore(small_graph_dir, fetch=fetch, device="cuda")
    ids = torch.randint(0, 600, (1000,))
    for _ in range(3):
        rows = store.multi_get_tensor([TensorAttr(None, "x", ids), TensorAttr(None, "y", ids)])
        assert rows[0].device.type == "cuda" and rows[1].device.type == "cuda"
        assert torch.equal(rows[0].cpu(), small_graph.feat_tensor()[ids])
        assert torch.equal(rows[1].cpu(), torch.from_numpy(small_graph.label)[ids])
    with pytest.raises(IndexError, match="out of range"):
        store.get_tensor(None, "x", torch.tensor([600], device="cuda"))
        torch.cuda.synchronize()
    store.close()


@pytest.mark.gpu
@needs_gpu
def test_gpu_node_loader_trains_a_step(small_graph_dir):
    from torch_geometric.nn.models import GraphSAGE

    feature_store = FolderFeatureStore(small_graph_dir, fetch="gpu", device="cuda")
    graph_store = FolderGraphStore(small_graph_dir)
    sampler = FolderNeighborSampler(graph_store, [5, 5], seed=0)
    loader = NodeLoader((feature_store, graph_store), sampler, torch.arange(200), batch_size=100)
    model = GraphSAGE(24, 16, num_layers=2, out_channels=5).cuda()
    for data in loader:
        data = data.to("cuda")
        out = model(data.x.float(), data.edge_index)[: data.batch_size]
        torch.nn.functional.cross_entropy(out, data.y[: data.batch_size]).backward()
    feature_store.close()
