import json

import torch

from glagcn import bench, bench_pipeline


def test_model_bench_writes_figures_for_the_chosen_models(tmp_path):
    rows = bench.benchmark(torch.device("cpu"), steps=1, train_batch=2, infer_batch=2,
                           receptive_fields=(27,))
    assert [row["receptive_field"] for row in rows] == [27]
    assert rows[0]["train_frames_per_s"] > 0 and rows[0]["infer_frames_per_s"] > 0
    path = bench.write_report(rows, tmp_path, torch.device("cpu"), "cmd", "_amp")
    assert path.name == "bench_cpu_amp.md" and "| 27 |" in path.read_text()
    assert json.loads((tmp_path / "bench_cpu_amp.json").read_text())["rows"][0]["parameters"]


def test_pipeline_bench_keeps_earlier_tags(tmp_path):
    bench_pipeline.main(["--out", str(tmp_path), "--tag", "one", "--frames", "600",
                         "--train-batch", "2", "--train-steps", "1", "--eval-frames", "30",
                         "--receptive-field", "27"])
    bench_pipeline.main(["--out", str(tmp_path), "--tag", "two", "--frames", "600",
                         "--train-batch", "2", "--train-steps", "1", "--eval-frames", "30",
                         "--receptive-field", "27"])
    runs = json.loads((tmp_path / "pipeline_cpu.json").read_text())["runs"]
    assert list(runs) == ["one", "two"]
    assert runs["two"]["batch_ms"] > 0 and runs["two"]["eval_frames_per_s"] > 0
    table = (tmp_path / "pipeline_cpu.md").read_text()
    assert "| one |" in table and "| two |" in table
