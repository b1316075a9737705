import json
from pathlib import Path

import torch

from trilab.bench import load_script

throughput = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py")
bench_arch, main, write_outputs = throughput.bench_arch, throughput.main, throughput.write_outputs


def test_bench_writes_json_markdown_and_plot(tmp_path):
    result = bench_arch(
        "resnet18", torch.device("cpu"), size=64, batch=2, groups=2, warmup=0, iters=1
    )
    assert result["backbone_images_per_s"] > 0 and result["drag_images_per_s"] > 0
    assert result["cluster_total_s_per_1000"] > result["cluster_kmeans_s_per_1000"] > 0
    # CGL: 512 -> 512 (K/2 = 1) -> 1024; attention: q, k 4 -> 64, v 4 -> 2, output 2 x 2;
    # 2 GCN 4 x 4 (weight + separate bias); head 3 -> 2
    expected = (512 * 512 + 512) + (512 * 1024 + 1024) + 2 * (4 * 64 + 64) + 10 + 6 + 2 * 20 + 8
    assert round(result["drag_extra_params_M"] * 1e6) == expected
    write_outputs([result], tmp_path, "cpu", warmup=0, iters=1, command="test")
    saved = json.loads((tmp_path / "bench_cpu.json").read_text())
    assert saved["rows"][0]["arch"] == "resnet18" and saved["command"] == "test"
    assert saved["machine"]["cores"] >= 1 and saved["iters"] == 1
    assert "| resnet18 | 64 | 2 |" in (tmp_path / "bench_cpu.md").read_text()
    assert (tmp_path / "bench_cpu.png").stat().st_size > 1000


def test_command_line_records_the_script_and_its_arguments(tmp_path):
    main(
        [
            "--out",
            str(tmp_path),
            "--archs",
            "resnet18",
            "--size",
            "64",
            "--batch",
            "1",
            "--groups",
            "2",
            "--warmup",
            "0",
            "--iters",
            "1",
            "--device",
            "cpu",
        ]
    )
    saved = json.loads((tmp_path / "bench_cpu.json").read_text())
    assert saved["command"].startswith("python drag/benchmarks/throughput.py --out ")
    assert "--archs resnet18" in saved["command"]
