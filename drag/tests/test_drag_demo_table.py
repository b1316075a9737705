"""The README's demo table is generated from the committed metrics by benchmarks/demo_table.py,
and stays in step with them (the script run as a maintainer runs it)."""

import copy
import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "benchmarks" / "demo_table.py"
METRICS_FILE = PROJECT / "benchmarks" / "demo_table" / "demo_cpu_metrics.json"
METRICS = json.loads(METRICS_FILE.read_text())
FIX = (
    "python benchmarks/demo_table.py benchmarks/demo_table/demo_cpu_metrics.json "
    "--out benchmarks/demo_table/demo_cpu.md --readme README.md"
)


def demo_table(*args, cwd=PROJECT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def markers(readme: str) -> tuple[str, str]:
    begin = next(line for line in readme.splitlines() if line.startswith("<!-- demo table:"))
    return begin, "<!-- end of demo table -->"


def test_committed_table_and_readme_block_are_the_committed_metrics(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((PROJECT / "README.md").read_text())
    done = demo_table(METRICS_FILE, "--out", tmp_path / "demo.md", "--readme", readme)
    assert done.returncode == 0, done.stderr
    generated = (tmp_path / "demo.md").read_text()
    committed = (PROJECT / "benchmarks" / "demo_table" / "demo_cpu.md").read_text()
    assert committed == generated, f"run (in drag/): {FIX}"
    assert readme.read_text() == (PROJECT / "README.md").read_text(), f"run (in drag/): {FIX}"
    assert "Generated from `benchmarks/demo_table/demo_cpu_metrics.json`" in generated


def _test_result(accuracy: float, private_recall: float) -> dict:
    return {
        "accuracy": accuracy,
        "balanced_accuracy": 0.75,
        "macro_f1": 0.7,
        "roc_auc": 0.9,
        "per_class": {"private": {"recall": private_recall}},
    }


def test_table_rows_come_from_the_metrics_and_only_the_readme_block_is_replaced(tmp_path):
    metrics = copy.deepcopy(METRICS)
    metrics["drag"]["test"] = _test_result(0.8125, 0.25)
    metrics["drag"]["threshold"] = 0.4
    metrics["drag"]["test_at_0.5"]["roc_auc"] = None
    metrics["class_counts"]["test"] = {"private": 90, "public": 35}
    metrics["majority_rate_test"] = 0.72
    metrics.pop("baseline")
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    begin, end = markers((PROJECT / "README.md").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{begin}\nold | table\n{end}\nafter\n")
    done = demo_table(path, "--readme", readme, "--command", "make -C drag figures")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2] == "| majority class (private) | - | 0.720 | 0.500 | 1.000 | - | - |"
    assert lines[3] == "| DRAG | 0.400 (chosen on val) | 0.812 | 0.750 | 0.250 | 0.900 | 0.700 |"
    assert lines[4].startswith("| DRAG, at 0.5 | 0.5 |") and "| - |" in lines[4]
    assert not any(line.startswith("| baseline") for line in lines)
    assert readme.read_text() == f"before\n{begin}\n{done.stdout}{end}\nafter\n"
    again = demo_table(path, "--readme", readme)  # a second run changes nothing
    assert again.returncode == 0 and readme.read_text().count(begin) == 1
    assert readme.read_text() == f"before\n{begin}\n{done.stdout}{end}\nafter\n"


def test_a_readme_without_markers_is_refused_unchanged(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    done = demo_table(METRICS_FILE, "--readme", readme)
    assert done.returncode != 0 and "no demo-table markers" in done.stderr
    assert "Traceback" not in done.stderr
    assert readme.read_text() == "no markers\n"
