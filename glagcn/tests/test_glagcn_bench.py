import json
from pathlib import Path

import torch

from trilab.bench import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
bench = load_script(BENCHMARKS / "bench.py")
bench_pipeline = load_script(BENCHMARKS / "bench_pipeline.py")


def test_model_bench_writes_figures_for_the_chosen_models(tmp_path):
    rows = bench.benchmark(
        torch.device("cpu"), steps=1, train_batch=2, infer_batch=2, receptive_fields=(27,)
    )
    assert [row["receptive_field"] for row in rows] == [27]
    assert rows[0]["train_frames_per_s"] > 0 and rows[0]["infer_frames_per_s"] > 0
    path = bench.report(rows, tmp_path, torch.device("cpu"), "cmd", "_amp")
    assert path.name == "bench_cpu_amp.md" and "| 27 | " in path.read_text()
    assert "Command: `cmd`" in path.read_text()
    saved = json.loads((tmp_path / "bench_cpu_amp.json").read_text())
    assert saved["rows"][0]["parameters"] == rows[0]["parameters"] > 0
    assert saved["command"] == "cmd" and saved["machine"]["cores"] >= 1


def test_pipeline_bench_keeps_earlier_tags(tmp_path):
    bench_pipeline.main(
        [
            "--out",
            str(tmp_path),
            "--tag",
            "one",
            "--frames",
            "600",
            "--train-batch",
            "2",
            "--train-steps",
            "1",
            "--eval-frames",
            "30",
            "--receptive-field",
            "27",
        ]
    )
    bench_pipeline.main(
        [
            "--out",
            str(tmp_path),
            "--tag",
            "two",
            "--frames",
            "600",
            "--train-batch",
            "2",
            "--train-steps",
            "1",
            "--eval-frames",
            "30",
            "--receptive-field",
            "27",
        ]
    )
    rows = json.loads((tmp_path / "pipeline_cpu.json").read_text())["rows"]
    assert [row["tag"] for row in rows] == ["one", "two"]
    assert rows[1]["batch_ms"] > 0 and rows[1]["eval_frames_per_s"] > 0
    assert "--tag two" in rows[1]["command"]
    table = (tmp_path / "pipeline_cpu.md").read_text()
    assert "| one |" in table and "| two |" in table


def test_pipeline_bench_reads_tags_filed_in_the_earlier_layout(tmp_path):
    stem = tmp_path / "pipeline_cpu"
    (tmp_path / "pipeline_cpu.json").write_text(
        json.dumps({"device": "cpu", "runs": {"before": {"commit": "abc", "batch_ms": 1.0}}})
    )
    assert bench_pipeline.earlier_runs(stem) == [
        {"tag": "before", "commit": "abc", "batch_ms": 1.0}
    ]
