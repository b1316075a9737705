"""The skip-is-failure rule, judged on a JUnit file that pytest itself writes."""

import os
import subprocess
import sys
from pathlib import Path

from gpucheck import pytest_gate

GPU_TESTS = """
import pytest

pytestmark = pytest.mark.gpu


def test_passes():
    assert True


def test_needs_missing_cupy():
    pytest.importorskip("cupy_not_installed_here")


def test_skips_for_no_reason_a_gpu_machine_accepts():
    pytest.skip("needs a CUDA GPU")


def test_fails():
    assert 1 == 2
"""


def _run(tmp_path: Path) -> list[pytest_gate.Outcome]:
    tests = tmp_path / "proj" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_gpu_paths.py").write_text(GPU_TESTS)
    (tests / "test_cpu_only.py").write_text("def test_cpu():\n    assert True\n")
    (tests / "test_broken_import.py").write_text(
        "import pytest\nimport torchvision_not_here\n\n@pytest.mark.gpu\ndef test_x():\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    files = pytest_gate.gpu_test_files(tmp_path, ["proj/tests"])
    assert [f.name for f in files] == ["test_broken_import.py", "test_gpu_paths.py"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outcomes, tail = pytest_gate.run_gpu_tests(
        tmp_path, ["proj/tests"], tmp_path / "junit.xml", env, timeout=120
    )
    assert (tmp_path / "junit.xml").is_file(), tail
    return outcomes


def test_skips_are_failures_unless_a_missing_dependency_explains_them(tmp_path):
    outcomes = _run(tmp_path)
    missing = {
        "cupy_not_installed_here": "zero-copy figures skipped",
        "torchvision_not_here": "DRAG figures skipped",
    }
    judged = {o.test.split(".")[-1]: o for o in pytest_gate.judge(outcomes, missing)}
    assert judged["test_passes"].verdict == "ok"
    assert judged["test_needs_missing_cupy"].outcome == "skipped"
    assert judged["test_needs_missing_cupy"].verdict == "explained"
    assert judged["test_skips_for_no_reason_a_gpu_machine_accepts"].verdict == "failure"
    assert judged["test_fails"].verdict == "failure"
    broken = [o for o in outcomes if "broken_import" in o.test]
    assert broken and broken[0].outcome == "error" and broken[0].verdict == "explained"
    counts = pytest_gate.summary(outcomes)
    assert (counts["passed"], counts["failures"], counts["explained"]) == (1, 2, 2)


def test_an_unreported_dependency_does_not_excuse_a_skip(tmp_path):
    outcomes = pytest_gate.judge(_run(tmp_path), missing={})
    assert sum(o.verdict == "failure" for o in outcomes) == 4


def test_no_junit_file_is_a_failure(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_a.py").write_text(
        "import pytest\n@pytest.mark.gpu\ndef test_a():\n    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outcomes, _ = pytest_gate.run_gpu_tests(
        tmp_path, ["t"], tmp_path / "nowhere" / "j.xml", env, timeout=0.001
    )
    assert outcomes[0].verdict == "failure"


def test_cli_without_gpu_says_so_in_one_line_and_fails(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "gpucheck", "--out", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("no CUDA GPU found (")
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


def test_a_test_phase_ended_by_its_cap_keeps_the_outcomes_the_log_shows(tmp_path):
    """pytest writes its JUnit file only at the end: when the phase's cap ends it, the tests the
    verbose log reports finished are kept, and the unfinished rest is one error."""
    tests = tmp_path / "proj" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_gpu_a.py").write_text(
        "import pytest\n\n\n@pytest.mark.gpu\ndef test_quick():\n    pass\n\n\n"
        "@pytest.mark.gpu\ndef test_skips():\n    pytest.skip(\"could not import 'cupy'\")\n"
    )
    (tests / "test_gpu_b.py").write_text(
        "import time\n\nimport pytest\n\n\n@pytest.mark.gpu\ndef test_hangs():\n"
        "    time.sleep(120)\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outcomes, tail = pytest_gate.run_gpu_tests(
        tmp_path, ["proj/tests"], tmp_path / "junit.xml", env, timeout=12, log=tmp_path / "l.txt"
    )
    assert not (tmp_path / "junit.xml").exists()
    by_name = {o.test.split(".")[-1]: o for o in outcomes}
    assert by_name["test_quick"].outcome == "passed"
    assert by_name["test_skips"].outcome == "skipped"
    assert by_name["pytest"].outcome == "error" and "did not finish" in by_name["pytest"].message
    assert "test_hangs" not in by_name
    judged = {o.test.split(".")[-1]: o for o in pytest_gate.judge(outcomes, {"cupy": "x"})}
    assert judged["test_skips"].verdict == "explained", judged["test_skips"].message
