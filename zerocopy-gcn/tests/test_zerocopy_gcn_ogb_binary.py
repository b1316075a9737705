"""Streaming conversion of OGB folders: binary data.npz (papers100M layout), CSV without a
node count, all-or-nothing output, and feature values checked on load and convert."""

import gzip
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from zerocopy_gcn.graph import (
    GraphFormatError,
    convert_npz,
    convert_ogb_node_folder,
    load_graph,
)
from zerocopy_gcn.graph.convert import features, ogb, ogb_files
from zerocopy_gcn.graph.csr import save_graph
from zerocopy_gcn.graph.npz_stream import NpzArrays
from zerocopy_gcn.graph.ogb_synthetic import write_ogb_binary_folder


def _edges_as_rows(graph):
    return {
        (v, int(u))
        for v in range(graph.num_nodes)
        for u in graph.indices[graph.indptr[v] : graph.indptr[v + 1]]
    }


@pytest.mark.parametrize("layout", [{}, {"compressed": True}, {"fortran_edges": True}])
def test_binary_folder_converts_like_a_whole_np_load(tmp_path, layout, monkeypatch):
    monkeypatch.setattr(ogb_files, "EDGES_PER_BLOCK", 1000)  # many blocks, both edge rows
    monkeypatch.setattr(features, "_BLOCK_BYTES", 4096)
    root = write_ogb_binary_folder(
        tmp_path / "ogbn_papers", 700, feat_dim=8, progress=False, **layout
    )
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "out", progress=False))
    whole = np.load(root / "raw" / "data.npz")
    src, dst = whole["edge_index"]
    expected = set(zip(dst.tolist(), src.tolist(), strict=True))
    expected |= {(b, a) for a, b in expected}
    assert _edges_as_rows(graph) == expected
    assert graph.feat_dtype == "float16" and np.array_equal(graph.feat, whole["node_feat"])
    labels = np.load(root / "raw" / "node-label.npz")["node_label"][:, 0]
    assert np.array_equal(graph.label == -1, np.isnan(labels))
    assert np.array_equal(graph.label[graph.label >= 0], labels[~np.isnan(labels)])
    assert graph.meta["num_classes"] == int(np.nanmax(labels)) + 1


def _peak_conversion_bytes(tmp_path, avg_degree, feat_dim):
    root = write_ogb_binary_folder(
        tmp_path / f"in{avg_degree}",
        2_000,
        avg_degree=avg_degree,
        feat_dim=feat_dim,
        progress=False,
    )
    size = sum(p.stat().st_size for p in (root / "raw").iterdir())
    convert_ogb_node_folder(root, tmp_path / f"warm{avg_degree}", progress=False)  # imports
    tracemalloc.start()
    convert_ogb_node_folder(root, tmp_path / f"out{avg_degree}", progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, size


def test_binary_conversion_holds_blocks_not_arrays(tmp_path, monkeypatch):
    """Peak heap is set by the block sizes and the node count, not by the edges or features:
    ~5x the input (4x edges, 16x feature width) on the same nodes costs no more memory."""
    monkeypatch.setattr(ogb_files, "EDGES_PER_BLOCK", 2000)
    monkeypatch.setattr(features, "_BLOCK_BYTES", 8192)
    monkeypatch.setattr(ogb, "build_csr", _small_block_build_csr)
    small_peak, small_input = _peak_conversion_bytes(tmp_path, 10, 8)
    large_peak, large_input = _peak_conversion_bytes(tmp_path, 40, 128)
    assert large_input > 4 * small_input
    assert large_peak < 1.5 * small_peak + (64 << 10), (small_peak, large_peak)
    assert large_peak < large_input / 2, (large_peak, large_input)  # never the whole input


def _small_block_build_csr(*args, **kwargs):
    from zerocopy_gcn.graph.build import build_csr

    return build_csr(*args, block_edges=4000, **kwargs)


def _write_gz(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def _csv_folder(root, features=None):
    raw = root / "raw"
    _write_gz(raw / "edge.csv.gz", "0,1\n0,2\n1,2\n3,2\n")
    rows = features or [[r * 3.0, r * 3.0 + 1, r * 3.0 + 2] for r in range(4)]
    _write_gz(raw / "node-feat.csv.gz", "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    _write_gz(raw / "node-label.csv.gz", "0\n1\nnan\n1\n")
    for name, ids in (("train", "0\n1\n"), ("valid", "3\n"), ("test", "1\n")):
        _write_gz(root / "split" / "sales_ranking" / f"{name}.csv.gz", ids)
    return root


def test_csv_folder_without_num_node_list_infers_the_count(tmp_path):
    root = _csv_folder(tmp_path / "ogbn_toy")  # no raw/num-node-list.csv.gz
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "out", progress=False))
    assert graph.num_nodes == 4 and graph.num_edges == 8
    assert graph.feat[3].tolist() == [9.0, 10.0, 11.0]


def _no_partial_left(tmp_path):
    return not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_corrupt_binary_input_leaves_no_output(tmp_path):
    root = write_ogb_binary_folder(tmp_path / "ogbn_bad", 300, feat_dim=4, progress=False)
    data = root / "raw" / "data.npz"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # cut off mid-download
    with pytest.raises(GraphFormatError, match="data.npz"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and _no_partial_left(tmp_path)


def test_failure_after_writing_started_removes_the_half_written_folder(tmp_path, monkeypatch):
    root = write_ogb_binary_folder(tmp_path / "ogbn", 300, feat_dim=4, progress=False)
    _write_gz(root / "split" / "time" / "valid.csv.gz", "12\n9999\n")  # id out of range
    with pytest.raises(GraphFormatError, match="valid_idx|9999"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and _no_partial_left(tmp_path)


def test_existing_output_folder_is_not_touched(tmp_path):
    root = _csv_folder(tmp_path / "ogbn_toy")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("user data")
    with pytest.raises(GraphFormatError, match="not empty"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "mine.txt").read_text() == "user data"


def test_nan_in_binary_features_names_the_file_and_row(tmp_path):
    root = write_ogb_binary_folder(tmp_path / "ogbn", 300, feat_dim=4, progress=False)
    whole = dict(np.load(root / "raw" / "data.npz"))
    whole["node_feat"][217, 2] = np.nan
    np.savez(root / "raw" / "data.npz", **whole)
    with pytest.raises(GraphFormatError, match=r"data.npz:node_feat: row 217 .*non-finite"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and _no_partial_left(tmp_path)


def test_nan_in_csv_and_npz_features_is_refused(tmp_path, tiny_arrays):
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, float("inf"), 9.0], [1.0, 1.0, 1.0]]
    root = _csv_folder(tmp_path / "ogbn_toy", rows)
    with pytest.raises(GraphFormatError, match=r"node-feat.csv.gz: row 2 .*inf"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    indptr, indices, feat, label, splits = tiny_arrays()
    feat[3, 1] = np.nan
    np.savez(
        tmp_path / "g.npz",
        indptr=indptr,
        indices=indices,
        feat=feat,
        label=label,
        **{f"{k}_idx": v for k, v in splits.items()},
    )
    with pytest.raises(GraphFormatError, match=r"g.npz:feat: row 3 "):
        convert_npz(tmp_path / "g.npz", tmp_path / "n", progress=False)
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_load_refuses_non_finite_features_naming_the_row(tmp_path, tiny_arrays, dtype):
    indptr, indices, feat, label, splits = tiny_arrays()
    if dtype == "bfloat16":
        import torch

        feat = torch.from_numpy(feat).bfloat16().view(torch.int16).numpy().view(np.uint16)
    else:
        feat = feat.astype(dtype)
    folder = save_graph(tmp_path / "g", indptr, indices, feat, label, splits, feat_dtype=dtype)
    bad = np.load(folder / "feat.npy")
    bad[2, 5] = 0x7F80 if dtype == "bfloat16" else np.inf  # +inf in bfloat16 bits
    np.save(folder / "feat.npy", bad)
    with pytest.raises(GraphFormatError, match=r"feat.npy: row 2 .*inf"):
        load_graph(folder)
    assert load_graph(folder, validate="cheap").num_nodes == 4  # the opt-out still opens it


def test_npz_reader_refuses_object_arrays_without_unpickling(tmp_path):
    np.savez(tmp_path / "o.npz", node_feat=np.array([{"a": 1}], dtype=object))
    with NpzArrays(tmp_path / "o.npz") as arrays:
        with pytest.raises(GraphFormatError, match="object arrays are refused"):
            list(arrays.row_blocks("node_feat", 10))
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("node_feat.npy", b"not an npy file")
    with NpzArrays(tmp_path / "x.npz") as arrays:
        with pytest.raises(GraphFormatError, match="x.npz:node_feat: not a readable .npy"):
            arrays.shape("node_feat")


def test_convert_bench_writes_figures_and_projection(tmp_path):
    from pathlib import Path

    from trilab.bench import load_script

    convert_bench = load_script(
        Path(__file__).resolve().parents[1] / "benchmarks" / "ogb_conversion.py"
    )
    result = convert_bench.main(
        ["--nodes", "2000", "4000", "--out", str(tmp_path / "b"), "--work", str(tmp_path / "w")]
    )
    saved = json.loads((tmp_path / "b" / "ogb_binary_conversion.json").read_text())
    assert [r["num_nodes"] for r in saved["rows"]] == [2000, 4000]
    assert saved["command"].startswith("python ") and saved["machine"]["cores"] >= 1
    for run in saved["rows"]:
        assert run["seconds"] > 0 and run["peak_anon_bytes"] >= run["baseline_anon_bytes"] > 0
        assert run["stored_edges"] > run["num_edges"]  # reverse edges added
    assert result["projection"]["output_bytes"] > 1e9
    assert "papers100M" in (tmp_path / "b" / "ogb_binary_conversion.md").read_text()
    assert not (tmp_path / "w" / "converted_2000").exists()
