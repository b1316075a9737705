"""benchmarks/throughput.py, run as a maintainer runs it (tiny sizes)."""

import json
import sys
from pathlib import Path

from trilab.testing import run_to_completion

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_json_markdown_and_plot_with_its_command(tmp_path):
    run_to_completion(
        [sys.executable, "drag/benchmarks/throughput.py", "--out", str(tmp_path)]
        + ["--archs", "resnet18", "--size", "64", "--batch", "2", "--groups", "2"]
        + ["--warmup", "0", "--iters", "1", "--device", "cpu"],
        cwd=ROOT,
    )
    saved = json.loads((tmp_path / "bench_cpu.json").read_text())
    row = saved["rows"][0]
    assert row["arch"] == "resnet18"
    assert row["backbone_images_per_s"] > 0 and row["drag_images_per_s"] > 0
    assert row["cluster_total_s_per_1000"] > row["cluster_kmeans_s_per_1000"] > 0
    # CGL: 512 -> 512 (K/2 = 1) -> 1024; attention: q, k 4 -> 64, v 4 -> 2, output 2 x 2;
    # 2 GCN 4 x 4 (weight + separate bias); head 3 -> 2
    expected = (512 * 512 + 512) + (512 * 1024 + 1024) + 2 * (4 * 64 + 64) + 10 + 6 + 2 * 20 + 8
    assert round(row["drag_extra_params_M"] * 1e6) == expected
    assert saved["command"].startswith("python drag/benchmarks/throughput.py --out ")
    assert "--archs resnet18" in saved["command"]
    assert saved["machine"]["cores"] >= 1 and saved["iters"] == 1
    assert "| resnet18 | 64 | 2 |" in (tmp_path / "bench_cpu.md").read_text()
    assert (tmp_path / "bench_cpu.png").stat().st_size > 1000


def test_committed_results_sit_in_a_folder_named_after_the_script_that_wrote_them():
    benchmarks = ROOT / "drag" / "benchmarks"
    assert not [p.name for p in benchmarks.iterdir() if p.is_file() and p.suffix != ".py"]
    # adjacency_bench: the removed comparison script (drag.adjacency_bench at commit 4be0708)
    scripts = {p.stem for p in benchmarks.glob("*.py")} | {"adjacency_bench"}
    folders = {p.name for p in benchmarks.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= scripts
