import json

import torch

from drag.bench import bench_arch, write_outputs


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
    meta = {
        "device": "cpu",
        "device_kind": "cpu",
        "torch": torch.__version__,
        "threads": 1,
        "warmup": 0,
        "iters": 1,
        "command": "test",
    }
    write_outputs([result], meta, tmp_path)
    saved = json.loads((tmp_path / "bench_cpu.json").read_text())
    assert saved["results"][0]["arch"] == "resnet18"
    assert "| resnet18 | 64 | 2 |" in (tmp_path / "bench_cpu.md").read_text()
    assert (tmp_path / "bench_cpu.png").stat().st_size > 1000
