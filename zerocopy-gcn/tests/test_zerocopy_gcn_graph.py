import gzip
import json

import numpy as np
import pytest
import torch

from zerocopy_gcn.graph import (
    GraphFormatError,
    convert_npz,
    convert_ogb_node_folder,
    generate_rmat,
    load_graph,
    preset_spec,
    save_graph,
)
from zerocopy_gcn.graph.build import build_csr


def test_roundtrip_is_memory_mapped(tmp_path, tiny_arrays):
    save_graph(tmp_path / "g", *tiny_arrays())
    graph = load_graph(tmp_path / "g")
    assert isinstance(graph.indices, np.memmap) and isinstance(graph.feat, np.memmap)
    assert graph.num_nodes == 4 and graph.num_edges == 6 and graph.num_classes == 2
    assert graph.mask("train").tolist() == [True, True, False, False]
    assert torch.equal(graph.feat_tensor(), torch.arange(32.0).reshape(4, 8))


@pytest.mark.parametrize(
    "file,mutate,message",
    [
        ("indices.npy", lambda a: np.array([1, 2, 0, 0, 1, 7], np.int32), "node id 7"),
        ("indptr.npy", lambda a: np.array([0, 3, 2, 6, 6], np.int64), "not non-decreasing"),
        ("indptr.npy", lambda a: a.astype(np.int32), "int64"),
        ("feat.npy", lambda a: a[:3], "has 3 rows but the graph has 4 nodes"),
        ("feat.npy", lambda a: a.astype(np.float64), "float32"),
        ("label.npy", lambda a: a.astype(np.float32), "int64"),
        ("train_idx.npy", lambda a: np.array([0, 9], np.int64), "node id 9"),
    ],
)
def test_bad_folders_fail_at_load_naming_the_file(tmp_path, file, mutate, message, tiny_arrays):
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    np.save(folder / file, mutate(np.load(folder / file)))
    with pytest.raises(GraphFormatError, match=message) as info:
        load_graph(folder)
    assert file in str(info.value)


def test_missing_meta_and_bad_dtype_meta(tmp_path, tiny_arrays):
    with pytest.raises(GraphFormatError, match="meta.json"):
        load_graph(tmp_path)
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    meta = json.loads((folder / "meta.json").read_text())
    meta["feat_dtype"] = "int8"
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(GraphFormatError, match="int8"):
        load_graph(folder)


def _chunks(src, dst, size):
    return lambda: ((src[i : i + size], dst[i : i + size]) for i in range(0, len(src), size))


def test_streaming_builder_matches_scipy_style_reference(tmp_path):
    rng = np.random.default_rng(0)
    n, m = 50, 400
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    num_edges, _ = build_csr(
        tmp_path,
        n,
        _chunks(src, dst, 37),
        symmetric=True,
        dedupe=True,
        drop_self_loops=True,
        progress=False,
    )
    indptr, indices = np.load(tmp_path / "indptr.npy"), np.load(tmp_path / "indices.npy")
    expected = {(int(d), int(s)) for s, d in zip(src, dst, strict=True) if s != d}
    expected |= {(s, d) for d, s in expected}
    got = {(v, int(u)) for v in range(n) for u in indices[indptr[v] : indptr[v + 1]]}
    assert got == expected and num_edges == len(expected)
    assert not (tmp_path / "indices.raw.npy").exists()


def test_builder_keeps_duplicates_when_asked_and_rejects_bad_ids(tmp_path):
    src, dst = np.array([0, 0, 1]), np.array([1, 1, 1])
    num_edges, degrees = build_csr(
        tmp_path / "a",
        2,
        _chunks(src, dst, 2),
        symmetric=False,
        dedupe=False,
        drop_self_loops=False,
        progress=False,
    )
    assert num_edges == 3 and degrees.tolist() == [0, 3]
    with pytest.raises(GraphFormatError, match="id 5"):
        build_csr(tmp_path / "b", 2, _chunks(np.array([5]), np.array([0]), 1), progress=False)


def test_rmat_is_seeded_streaming_and_learnable_shape(tmp_path):
    spec = preset_spec(
        "reddit_like", num_nodes=300, avg_degree=10, feat_dim=8, chunk_pairs=100, seed=5
    )
    a = load_graph(generate_rmat(tmp_path / "a", spec, progress=False))
    one_chunk = preset_spec(
        "reddit_like", num_nodes=300, avg_degree=10, feat_dim=8, chunk_pairs=10_000, seed=5
    )
    b = load_graph(generate_rmat(tmp_path / "b", spec, progress=False))
    c = load_graph(generate_rmat(tmp_path / "c", one_chunk, progress=False))
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.feat, b.feat)
    assert not np.array_equal(a.indices, c.indices)  # chunking is part of the seeded stream
    assert a.num_nodes == 300 and 0 < a.num_edges <= 3000 and a.feat.shape == (300, 8)
    assert a.num_classes == 41 and a.label.max() < 41
    deg = a.degrees()
    assert deg.max() > 4 * deg.mean()  # power-law-ish: hubs exist
    for v in range(a.num_nodes):  # symmetric, no self loops, no duplicates
        row = a.indices[a.indptr[v] : a.indptr[v + 1]]
        assert v not in row and len(set(row.tolist())) == len(row)
    assert sorted(np.concatenate([a.splits[s] for s in a.splits]).tolist()) == list(range(300))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rmat_narrow_features(tmp_path, dtype):
    spec = preset_spec("products_like", num_nodes=100, avg_degree=6, feat_dtype=dtype, seed=1)
    graph = load_graph(generate_rmat(tmp_path, spec, progress=False))
    table = graph.feat_tensor()
    assert table.dtype == getattr(torch, dtype) and table.shape == (100, 100)
    assert torch.isfinite(table.float()).all() and table.float().std() > 0.5


def _write_gz(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def _ogb_folder(root, labels="0\n1\nnan\n1\n"):
    raw = root / "raw"
    _write_gz(raw / "edge.csv.gz", "0,1\n0,2\n1,2\n3,2\n")
    _write_gz(
        raw / "node-feat.csv.gz",
        "\n".join(",".join(f"{v:.1f}" for v in range(r * 3, r * 3 + 3)) for r in range(4)) + "\n",
    )
    _write_gz(raw / "node-label.csv.gz", labels)
    _write_gz(raw / "num-node-list.csv.gz", "4\n")
    _write_gz(raw / "num-edge-list.csv.gz", "4\n")
    split = root / "split" / "sales_ranking"
    _write_gz(split / "train.csv.gz", "0\n1\n")
    _write_gz(split / "valid.csv.gz", "3\n")
    _write_gz(split / "test.csv.gz", "1\n")
    return root


def test_ogb_csv_folder_converts(tmp_path):
    root = _ogb_folder(tmp_path / "ogbn_toy")
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "out", progress=False))
    assert graph.num_nodes == 4 and graph.num_edges == 8  # reverse edges added
    assert graph.indices[graph.indptr[2] : graph.indptr[3]].tolist() == [0, 1, 3]
    assert graph.label.tolist() == [0, 1, -1, 1] and graph.num_classes == 2
    assert graph.feat[2].tolist() == [6.0, 7.0, 8.0]
    assert graph.splits["val"].tolist() == [3]


def test_ogb_binary_folder_converts(tmp_path):
    root = tmp_path / "ogbn_bin"
    (root / "raw").mkdir(parents=True)
    np.savez(
        root / "raw" / "data.npz",
        edge_index=np.array([[0, 1], [1, 2]]),
        node_feat=np.ones((3, 4), np.float16),
        num_nodes_list=np.array([3]),
    )
    np.savez(root / "raw" / "node-label.npz", node_label=np.array([[1.0], [np.nan], [0.0]]))
    split = root / "split" / "time"
    for name, ids in (("train", "0\n"), ("valid", "2\n"), ("test", "0\n")):
        _write_gz(split / f"{name}.csv.gz", ids)
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "out", progress=False))
    assert graph.feat_dtype == "float16" and graph.num_edges == 4
    assert graph.label.tolist() == [1, -1, 0]


def test_ogb_errors_name_the_file(tmp_path):
    root = _ogb_folder(tmp_path / "ogbn_toy")
    _write_gz(root / "raw" / "num-node-list.csv.gz", "5\n")
    with pytest.raises(GraphFormatError, match="node-feat.csv.gz: has 4 rows"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    _write_gz(root / "raw" / "num-node-list.csv.gz", "3\n")
    with pytest.raises(GraphFormatError, match="node-feat.csv.gz"):
        convert_ogb_node_folder(root, tmp_path / "out2", progress=False)
    with pytest.raises(GraphFormatError, match="raw"):
        convert_ogb_node_folder(tmp_path / "nothing", tmp_path / "out3", progress=False)


def test_npz_edge_index_and_csr_and_masks(tmp_path, tiny_arrays):
    indptr, indices, feat, label, splits = tiny_arrays()
    dst = np.repeat(np.arange(4), np.diff(indptr))
    np.savez(
        tmp_path / "a.npz",
        edge_index=np.stack([indices, dst]),
        feat=feat,
        label=label,
        **{f"{k}_idx": v for k, v in splits.items()},
    )
    a = load_graph(convert_npz(tmp_path / "a.npz", tmp_path / "a", progress=False))
    np.savez(
        tmp_path / "b.npz",
        indptr=indptr,
        indices=indices,
        x=feat,
        y=label,
        train_mask=np.array([1, 1, 0, 0], bool),
        val_mask=np.array([0, 0, 1, 0], bool),
        test_mask=np.array([0, 0, 0, 1], bool),
    )
    b = load_graph(convert_npz(tmp_path / "b.npz", tmp_path / "b", progress=False))
    for graph in (a, b):
        assert np.array_equal(graph.indptr, indptr)
        assert np.array_equal(graph.indices, indices)
        assert graph.splits["train"].tolist() == [0, 1]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", feat=np.zeros((3, 2), np.float32), label=np.zeros(3))
    with pytest.raises(GraphFormatError, match="train_idx"):
        convert_npz(tmp_path / "bad.npz", tmp_path / "o", progress=False)
    np.savez(
        tmp_path / "bad2.npz",
        feat=np.zeros((3, 2), np.float32),
        label=np.zeros(3),
        train_idx=[0],
        val_idx=[1],
        test_idx=[2],
        edge_index=np.array([[0], [4]]),
    )
    with pytest.raises(GraphFormatError, match="id 4"):
        convert_npz(tmp_path / "bad2.npz", tmp_path / "o2", progress=False)


def test_convert_cli(tmp_path, tiny_arrays, capsys):
    from zerocopy_gcn.graph.convert import main

    main(
        [
            "rmat",
            "products_like",
            str(tmp_path / "r"),
            "--num-nodes",
            "300",
            "--feat-dtype",
            "float16",
            "--seed",
            "2",
        ]
    )
    assert load_graph(tmp_path / "r").feat_dtype == "float16"
    indptr, indices, feat, label, splits = tiny_arrays()
    np.savez(
        tmp_path / "g.npz",
        indptr=indptr,
        indices=indices,
        feat=feat,
        label=label,
        **{f"{k}_idx": v for k, v in splits.items()},
    )
    main(["npz", str(tmp_path / "g.npz"), str(tmp_path / "n")])
    assert "graph folder written" in capsys.readouterr().out
    assert load_graph(tmp_path / "n").num_edges == 6
