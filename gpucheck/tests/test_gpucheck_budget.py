"""The check fits one GPU loan: its plan and budget (dry run), the process-group kill, the
report rewritten after every phase, and a result folder that comes back whole."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpucheck import benches, cli, report, returned
from gpucheck.benches import Step
from gpucheck.probe import probe
from gpucheck.proc import run_in_group

ROOT = Path(__file__).resolve().parents[2]
LOAN_COMMAND_S = 540  # 9 minutes: one lent command may run 10


def test_the_whole_check_fits_nine_minutes():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\ngpu-check:") : makefile.index("\ngpu-wheels:")]
    wheels = int(re.search(r"timeout (\d+) \$\(GPU_PYTHON\) -m gpucheck.wheels", recipe)[1])
    kill_after, outer = map(
        int,
        re.search(
            r"timeout --kill-after=(\d+) (\d+) \$\(GPU_PYTHON\) -m gpucheck ", recipe
        ).groups(),
    )
    assert outer >= cli.BUDGET_S  # the outer timeout is only the last resort
    assert wheels + outer + kill_after <= LOAN_COMMAND_S
    assert '--out "$(OUT)"' in recipe and "GPU_PYTHON ?= python3\n" in makefile
    assert "GPU_PYTHON_VERSION ?= 3.12\n" in makefile  # the lent image's Python


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_dry_run_shows_the_plan_and_budget_with_the_plain_system_python(tmp_path):
    done = subprocess.run(
        ["make", "-s", "gpu-check", "ARGS=--dry-run", f"OUT={tmp_path / 'out'}"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{cli.BUDGET_S:.0f} s for the whole check" in text
    order = [text.index("GPU tests")] + [text.index(s.name) for s in benches.steps(tmp_path)]
    assert order == sorted(order)  # the tests first, then the steps, most wanted first
    assert "3 files of at most 8" in text and not (tmp_path / "out").exists()
    assert text.index("zerocopy gather") < text.index("zerocopy epochs") < text.index("drag")


def test_a_step_past_its_time_is_ended_with_its_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    start = time.monotonic()
    code = run_in_group(
        [sys.executable, "-c", script], tmp_path, dict(os.environ), 2.0, tmp_path / "log.txt"
    )
    assert code is None and time.monotonic() - start < 15
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"


def test_what_would_not_come_back_is_named(tmp_path):
    for index in range(9):
        (tmp_path / f"f{index}.md").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "bad name!.txt").write_text("x")
    with (tmp_path / "big.bin").open("wb") as handle:
        handle.truncate(returned.MAX_FILE_BYTES + 1)
    found = "\n".join(returned.problems(tmp_path))
    assert "12 files" in found and "deep.txt: more than 2 folders deep" in found
    assert "bad name!.txt: a name outside" in found and "big.bin: over 16 MiB" in found
    assert returned.problems(tmp_path / "a") == []


def test_the_report_is_rewritten_after_every_phase_and_comes_back_whole(tmp_path, monkeypatch):
    found = probe(smi_query=lambda: ([], "nvidia-smi not found"))
    found.cuda_available, found.gpu_name = True, "Fake GPU 80GB"
    found.gpu_memory_gib, found.gpu_capability, found.gpu_count = 80.0, "9.0", 1
    writes = (
        "import pathlib, sys; out = pathlib.Path(sys.argv[-1]); "
        "(out / 'r.json').write_text('{}'); (out / 'r.md').write_text('# mine\\n')"
    )

    def tiny_plan(work):
        plan = [
            Step("writes its report", [sys.executable, "-c", writes], (), max_s=60, min_s=0),
            Step(
                "hangs", [sys.executable, "-c", "import time; time.sleep(60)"], (), max_s=1, min_s=0
            ),
        ]
        for step in plan:
            step.args += ["--out", str(work / "reports" / benches.slug(step.name))]
            step.log = work / "logs" / f"{benches.slug(step.name)}.txt"
        return plan

    phases = []
    write_report = report.write_report

    def recording(*args, **kwargs):
        phases.append(kwargs["phase"])
        return write_report(*args, **kwargs)

    monkeypatch.setattr(cli, "probe", lambda: found)
    monkeypatch.setattr(benches, "steps", tiny_plan)
    monkeypatch.setattr(report, "write_report", recording)
    out = tmp_path / "out"
    code = cli.main(["--out", str(out), "--skip-tests", "--work", str(tmp_path / "work")])
    assert code == 1  # a step timed out
    assert phases == ["probe", "writes its report", "hangs", "all phases"]
    assert sorted(p.name for p in out.iterdir()) == [
        "Fake_GPU_80GB.json",
        "Fake_GPU_80GB.log.txt",
        "Fake_GPU_80GB.md",
    ]
    assert returned.problems(out) == []
    saved = json.loads((out / "Fake_GPU_80GB.json").read_text())
    assert [s["status"] for s in saved["steps"]] == ["ok", "timeout"]
    assert "### mine" in (out / "Fake_GPU_80GB.md").read_text()


DRIVER = """
import sys
from pathlib import Path
from gpucheck import benches, cli
from gpucheck.benches import Step
from gpucheck.probe import probe

found = probe(smi_query=lambda: ([], "nvidia-smi not found"))
found.cuda_available, found.gpu_name = True, "Fake GPU"
found.gpu_memory_gib, found.gpu_capability, found.gpu_count = 80.0, "9.0", 1
pid_file = sys.argv[1]
grandchild = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    f"open({pid_file!r}, 'w').write(str(child.pid)); time.sleep(60)"
)


def plan(work):
    step = Step("long", [sys.executable, "-c", grandchild], (), max_s=120, min_s=0)
    step.args += ["--out", str(work / "reports" / "long")]
    step.log = work / "logs" / "long.txt"
    return [step]


cli.probe = lambda: found
benches.steps = plan
sys.exit(cli.main(["--out", sys.argv[2], "--skip-tests"]))
"""


def test_an_outer_sigterm_ends_the_running_step_and_leaves_the_report(tmp_path):
    pid_file, out = tmp_path / "grandchild.pid", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    check = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(pid_file), str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and check.poll() is None, check.stdout.read()
        time.sleep(0.1)
    check.send_signal(signal.SIGTERM)  # what `timeout` does at the Makefile's outer limit
    output, _ = check.communicate(timeout=30)
    assert check.returncode == 1, output
    assert "ended by SIGTERM" in output and "Traceback" not in output
    saved = json.loads((out / "Fake_GPU.json").read_text())
    assert saved["phase"] == "ended by SIGTERM (an outer time limit)"
    time.sleep(0.2)
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"
