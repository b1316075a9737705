"""The throughput and pipeline benchmark scripts, run as a maintainer runs them (tiny sizes)."""

import json
import sys
from pathlib import Path

from trilab.testing import run_to_completion

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_model_bench_writes_figures_for_the_chosen_models(tmp_path):
    run_to_completion(
        [sys.executable, str(BENCHMARKS / "bench.py"), "--out", str(tmp_path), "--device", "cpu"]
        + ["--steps", "1", "--train-batch", "2", "--infer-batch", "2", "--receptive-fields", "27"]
        + ["--amp"]
    )
    saved = json.loads((tmp_path / "bench_cpu_amp.json").read_text())
    assert [row["receptive_field"] for row in saved["rows"]] == [27]
    row = saved["rows"][0]
    assert row["train_frames_per_s"] > 0 and row["infer_frames_per_s"] > 0
    assert row["parameters"] > 0
    table = (tmp_path / "bench_cpu_amp.md").read_text()
    assert "| 27 | " in table and "bench.py --out" in saved["command"]
    assert f"Command: `{saved['command']}`" in table and saved["machine"]["cores"] >= 1


def test_pipeline_bench_keeps_earlier_tags_including_the_earlier_file_layout(tmp_path):
    # the earlier layout filed runs by tag under "runs"
    (tmp_path / "pipeline_cpu.json").write_text(
        json.dumps({"device": "cpu", "runs": {"before": {"commit": "abc", "batch_ms": 1.0}}})
    )
    command = [sys.executable, str(BENCHMARKS / "bench_pipeline.py"), "--out", str(tmp_path)]
    tiny = ["--device", "cpu", "--frames", "600", "--train-batch", "2", "--train-steps", "1"]
    tiny += ["--eval-frames", "30", "--receptive-field", "27"]
    run_to_completion([*command, "--tag", "two", *tiny])
    rows = json.loads((tmp_path / "pipeline_cpu.json").read_text())["rows"]
    assert rows[0] == {"tag": "before", "commit": "abc", "batch_ms": 1.0}
    assert rows[1]["tag"] == "two" and "--tag two" in rows[1]["command"]
    assert rows[1]["batch_ms"] > 0 and rows[1]["eval_frames_per_s"] > 0
    table = (tmp_path / "pipeline_cpu.md").read_text()
    assert "| before |" in table and "| two |" in table


def test_committed_results_sit_in_a_folder_named_after_the_script_that_wrote_them():
    loose = {
        path.name
        for path in BENCHMARKS.iterdir()
        if path.is_file()
        and path.suffix in (".json", ".md", ".png")
        and path.name != "PERFORMANCE.md"
    }
    assert not loose, f"results outside a folder named after their script: {sorted(loose)}"
    for folder in (path for path in BENCHMARKS.iterdir() if path.is_dir()):
        if folder.name != "__pycache__":
            assert (BENCHMARKS / f"{folder.name}.py").is_file(), f"{folder} has no script"


def test_model_bench_reports_each_receptive_field_as_it_finishes(tmp_path):
    """A run ended by a time limit (the GPU check caps each step) keeps the rows it finished:
    the report is rewritten after every receptive field."""
    import torch

    from trilab.bench import load_script

    bench = load_script(BENCHMARKS / "bench.py")
    seen = []

    def after_each(rows):
        seen.append([row["receptive_field"] for row in rows])
        bench.report(rows, tmp_path, torch.device("cpu"), "python bench.py")
        assert (
            json.loads((tmp_path / "bench_cpu.json").read_text())["rows"][-1]["receptive_field"]
            == rows[-1]["receptive_field"]
        )

    bench.benchmark(torch.device("cpu"), 1, 2, 2, receptive_fields=(27, 81), after_each=after_each)
    assert seen == [[27], [27, 81]]
