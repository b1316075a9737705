import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from trilab.bench import load_script
from zerocopy_gcn.graph import load_graph, preset_spec
from zerocopy_gcn.graph.build import build_csr
from zerocopy_gcn.graph.rmat import PRESETS, _edge_chunks

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name):
    return load_script(BENCHMARKS / f"{name}.py")


def _peak_build_bytes(folder, avg_degree):
    spec = preset_spec(
        "papers_like_small", num_nodes=3_000, avg_degree=avg_degree, chunk_pairs=8_000
    )
    perm = np.random.default_rng(0).permutation(spec.num_nodes)
    tracemalloc.start()
    num_edges, _ = build_csr(
        folder, spec.num_nodes, lambda: _edge_chunks(spec, perm), progress=False, block_edges=20_000
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    indptr = np.load(folder / "indptr.npy")
    indices = np.load(folder / "indices.npy", mmap_mode="r")
    assert indptr[-1] == indices.shape[0] == num_edges and indices.dtype == np.int32
    return peak, spec.num_edges * 2 * 8  # one copy of the (row, col) int64 edge list


def test_builder_memory_does_not_grow_with_edges(tmp_path):
    """Peak heap memory of the CSR build is set by the chunk size, not the edge count: chunks
    are regenerated for pass 2 and indices go straight into a memory map (the property that
    lets papers_like_small, 250M edges, build in 24 GiB)."""
    small_peak, _ = _peak_build_bytes(tmp_path / "a", 100)
    large_peak, large_edge_list = _peak_build_bytes(tmp_path / "b", 400)
    assert large_peak < 1.5 * small_peak + (1 << 20), (small_peak, large_peak)
    assert large_peak < large_edge_list / 4, (large_peak, large_edge_list)


def test_paper_presets_have_the_paper_shapes():
    papers = PRESETS["papers_like_small"]
    assert (papers.num_nodes, papers.num_edges, papers.feat_dim) == (10_000_000, 250_000_000, 128)
    assert PRESETS["reddit_like"].feat_dim == 602 and PRESETS["products_like"].feat_dim == 100
    with pytest.raises(KeyError, match="unknown graph preset"):
        preset_spec("cora_like")


def test_pcie_model_counts_and_files(tmp_path):
    pcie_model = _script("pcie_model")
    rows = {r["row_bytes"]: r for r in pcie_model.run(tmp_path, [128, 400, 4096])}
    assert rows[128]["lines_naive"] == rows[128]["lines_aligned"] == 1  # aligned rows: no loss
    assert rows[400]["lines_aligned"] == rows[400]["lines_minimum"] == 4.0
    assert rows[400]["lines_naive"] > 6  # misaligned warps straddle two lines
    assert rows[4096]["efficiency_aligned"] == 1.0
    for name in ("pcie_model.json", "pcie_model.md", "pcie_model.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_quick_benchmarks_write_reports_and_name_skipped_gpu_modes(tmp_path):
    import torch

    out, data = tmp_path / "b", str(tmp_path / "data")
    gather = _script("gather_bandwidth").main(["--quick", "--out", str(out)])
    saved = json.loads((out / "gather_bandwidth.json").read_text())
    assert saved["measurements"] and saved["rows"][0]["mode"] == "memcpy"
    assert saved["command"].startswith("python ") and "--quick" in saved["command"]
    assert saved["machine"]["cores"] >= 1
    assert (out / "gather_bandwidth.png").is_file()
    sampler = _script("sampler_rates").main(["--quick", "--out", str(out), "--data-root", data])
    assert sampler["rows"][0]["edges_per_s"] > 0
    assert "| compiled | cpu |" in (out / "sampler_rates.md").read_text()
    cache = _script("cache_hit_rate").main(["--quick", "--out", str(out), "--data-root", data])
    hit = {(r["ranking"], r["cache_fraction"]): r["hit_rate"] for r in cache}
    assert hit[("degree", 0.0)] == 0 and hit[("degree", 0.5)] > 0.5  # hubs are hot
    multi = _script("multi_gpu").main(["--quick", "--out", str(out), "--data-root", data])
    if not torch.cuda.is_available():
        assert any("no CUDA device" in s for s in gather["skipped"])
        assert "Not runnable on this machine" in (out / "gather_bandwidth.md").read_text()
        assert not multi["rows"] and "GPU(s) on this machine" in multi["skipped"][0]


def test_generated_folder_is_reused(tmp_path):
    from zerocopy_gcn.graph import ensure_rmat

    spec = preset_spec("products_like", num_nodes=200, avg_degree=4, feat_dim=4)
    folder = ensure_rmat(tmp_path / "g", spec, progress=False)
    stamp = (folder / "feat.npy").stat().st_mtime_ns
    ensure_rmat(tmp_path / "g", spec, progress=False)
    assert (folder / "feat.npy").stat().st_mtime_ns == stamp
    assert load_graph(folder).num_nodes == 200


def test_gather_base_offsets_measured_against_memcpy(tmp_path):
    result = _script("gather_bandwidth").main(
        [
            "--out",
            str(tmp_path),
            "--table-mb",
            "2",
            "--gather-mb",
            "1",
            "--repeats",
            "1",
            "--row-bytes",
            "512",
            "--dtypes",
            "float32",
            "--base-offsets",
            "0",
            "16",
        ]
    )
    gather = {(r["mode"], r["base_offset"]): r for r in result["measurements"]}
    assert {("memcpy", 0), ("conventional", 16), ("index_select-out", 0)} <= set(gather)
    assert gather[("memcpy", 0)]["fraction_of_memcpy"] == 1.0
    assert all(r["gbps"] > 0 for r in result["measurements"])
    markdown = (tmp_path / "gather_bandwidth.md").read_text()
    assert "| conventional | float32 | random | 16 |" in markdown


def test_epoch_variants_multirun_fixed_minibatches_and_cold_first_epoch(tmp_path):
    """The variants run as one Hydra multirun of train.py; the summary reads each job's
    metrics.json and the page-cache record the callback wrote before the job."""
    epochs = _script("epoch_variants")
    sweep = tmp_path / "sweep"
    result = epochs.main(
        [
            "--out",
            str(tmp_path / "b"),
            "--sweep-dir",
            str(sweep),
            "--data-root",
            str(tmp_path / "data"),
            "--graph",
            "products_like:1500:8",
            "--split",
            "0.5",
            "0.1",
            "0.1",
            "--epochs",
            "2",
            "--max-batches",
            "2",
            "--fanouts",
            "4",
            "4",
            "--variants",
            "conventional",
            "conventional-prefetch",
            "gpu",
            "--override",
            "sample_on=device",
        ]
    )
    (multirun,) = result["multiruns"]
    assert "train.py -m +experiment=bench_epochs" in multirun
    rows = {r["variant"]: r for r in result["rows"]}
    import torch

    if not torch.cuda.is_available():
        assert set(rows) == {"conventional", "conventional-prefetch"}
        assert result["skipped"] == ["epoch gpu: no CUDA device"]
    row = rows["conventional"]
    assert row["max_batches"] == 2 and "sample_on=device" in row["overrides"]
    assert row["cold"]["epoch_s"] > 0 and row["epoch_s"] > 0
    # cold = set-up (timed apart: zero-copy pins the table there) + first epoch, for every mode
    cold = row["cold"]
    assert cold["setup_s"] > 0 and cold["total_s"] == pytest.approx(
        cold["setup_s"] + cold["epoch_s"]
    )
    assert row["page_cache_evicted"] and 0 <= row["cold_feat_resident_fraction"] <= 1
    assert row["speedup_vs_conventional"] == 1.0
    saved = json.loads((tmp_path / "b" / "epoch_variants.json").read_text())
    assert saved["multiruns"] == [multirun] and len(saved["rows"]) == len(rows)
    markdown = (tmp_path / "b" / "epoch_variants.md").read_text()
    assert "2 minibatches per epoch" in markdown and "cold set-up + epoch s" in markdown
    # summarising the multirun again, on its own, gives the same table
    again = epochs.main(["--summarise", *result["sweeps"], "--out", str(tmp_path / "c")])
    assert [r["variant"] for r in again["rows"]] == [r["variant"] for r in result["rows"]]


# a command's measurements recorded by hand, not by a script here (the command is in the file)
RECORDS_WITHOUT_SCRIPT = {"rmat_generation"}


def test_committed_results_sit_in_a_folder_named_after_their_script():
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")}
    results = [
        path.relative_to(BENCHMARKS)
        for path in BENCHMARKS.rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts
    ]
    assert results
    for result in results:
        assert len(result.parts) == 2, f"{result}: results go in benchmarks/<script>/"
        assert result.parts[0] in scripts | RECORDS_WITHOUT_SCRIPT, f"{result}: no such script"
    for name in ("gather_bandwidth", "epoch_variants", "pcie_model"):
        assert (
            'default=Path(__file__).resolve().with_suffix("")'
            in (BENCHMARKS / f"{name}.py").read_text()
        ), f"{name}.py: --out should default to benchmarks/{name}/"
