"""The README's demo table is generated from the committed metrics, and stays in step with them."""

import copy
import json
from pathlib import Path

import pytest

from trilab.bench import load_script

PROJECT = Path(__file__).resolve().parents[1]
demo_table = load_script(PROJECT / "benchmarks" / "demo_table.py")
METRICS = json.loads((PROJECT / "benchmarks" / "demo_cpu_metrics.json").read_text())


def test_committed_table_and_readme_block_are_the_committed_metrics():
    generated = demo_table.table(METRICS)
    fix = (
        "python benchmarks/demo_table.py benchmarks/demo_cpu_metrics.json "
        "--out benchmarks/demo_cpu.md --readme README.md"
    )
    assert (PROJECT / "benchmarks" / "demo_cpu.md").read_text() == generated, f"run: {fix}"
    readme = (PROJECT / "README.md").read_text()
    assert demo_table.readme_block(readme) == generated, f"run (in drag/): {fix}"


def _test_result(accuracy: float, private_recall: float) -> dict:
    return {
        "accuracy": accuracy,
        "balanced_accuracy": 0.75,
        "macro_f1": 0.7,
        "roc_auc": 0.9,
        "per_class": {"private": {"recall": private_recall}},
    }


def test_table_rows_come_from_the_metrics():
    metrics = copy.deepcopy(METRICS)
    metrics["drag"]["test"] = _test_result(0.8125, 0.25)
    metrics["drag"]["threshold"] = 0.4
    metrics["drag"]["test_at_0.5"]["roc_auc"] = None
    metrics["class_counts"]["test"] = {"private": 90, "public": 35}
    metrics["majority_rate_test"] = 0.72
    metrics.pop("baseline")
    lines = demo_table.table(metrics, command="make -C drag figures").splitlines()
    assert lines[2] == "| majority class (private) | - | 0.720 | 0.500 | 1.000 | - | - |"
    assert lines[3] == "| DRAG | 0.400 (chosen on val) | 0.812 | 0.750 | 0.250 | 0.900 | 0.700 |"
    assert lines[4].startswith("| DRAG, at 0.5 | 0.5 |") and "| - |" in lines[4]
    assert not any(line.startswith("| baseline") for line in lines)


def test_main_writes_the_table_and_replaces_only_the_readme_block(tmp_path, capsys):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{demo_table.BEGIN}\nold | table\n{demo_table.END}\nafter\n")
    out = tmp_path / "demo.md"
    demo_table.main([str(metrics), "--out", str(out), "--readme", str(readme)])
    generated = demo_table.table(METRICS)
    assert out.read_text() == generated
    assert readme.read_text() == (
        f"before\n{demo_table.BEGIN}\n{generated}{demo_table.END}\nafter\n"
    )
    assert capsys.readouterr().out == generated
    demo_table.main([str(metrics), "--readme", str(readme)])  # a second run changes nothing
    assert demo_table.readme_block(readme.read_text()) == generated


def test_a_readme_without_markers_is_refused_unchanged(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no demo-table markers"):
        demo_table.main([str(metrics), "--readme", str(readme)])
    assert readme.read_text() == "no markers\n"
