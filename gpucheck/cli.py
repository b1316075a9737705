"""``python -m gpucheck --out DIR`` (``make gpu-check OUT=DIR``): probe, GPU tests, benchmarks,
with the report rewritten into ``DIR`` after every phase, all within one time budget.

``--dry-run`` prints the plan and its budget without running anything (no GPU or torch needed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from gpucheck import benches, pytest_gate, report, returned
from gpucheck.probe import describe, probe

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("", "shared/src", "glagcn/src", "drag/src", "zerocopy-gcn/src")
TESTPATHS = ("shared/tests", "glagcn/tests", "drag/tests", "zerocopy-gcn/tests")
SITE = ".gpu-site"  # where `make gpu-check` installs the offline wheels it needs
# One lent command may run 10 minutes; the check stays within 9 with its wheel install (at most
# 30 s, Makefile) and the Makefile's outer timeout (BUDGET_S + 10 s, SIGKILL 8 s later):
# 30 + 500 + 8 = 538 s.
BUDGET_S = 490.0
TESTS_S = 90.0
REPORT_RESERVE_S = 5.0  # the last report's writing, after the last step


class Terminated(Exception):
    """SIGTERM arrived (the Makefile's outer timeout): stop, end the running step's group."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def child_env() -> dict[str, str]:
    """Environment for the tests and benchmarks: the repository's sources first."""
    paths = [str(ROOT / s) if s else str(ROOT) for s in SOURCES]
    if (ROOT / SITE).is_dir():
        paths.append(str(ROOT / SITE))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def plan_lines(out: Path, budget_s: float, tests_s: float, plan: list[benches.Step]) -> list[str]:
    """The dry run: what runs in which order, each part's time cap, what comes back."""
    test_files = pytest_gate.gpu_test_files(ROOT, list(TESTPATHS))
    lines = [
        f"gpu-check plan: {budget_s:.0f} s for the whole check (one lent command may run "
        "600 s; with the wheel install and the outer timeout it stays within 540 s)",
        "   probe: GPU, driver, PCIe link, torch/CuPy and every dependency",
        f"   up to {tests_s:4.0f} s  GPU tests: pytest -m gpu over {len(test_files)} files",
    ]
    used = tests_s
    for step in plan:
        used += step.max_s
        fits = "" if used <= budget_s - REPORT_RESERVE_S else "  (runs only if time is left)"
        lines.append(
            f"   up to {step.max_s:4.0f} s  {step.name}: {shlex.join(step.args[1:-2])} "
            f"[needs {', '.join(step.needs) or 'nothing'}; not started with < {step.min_s:.0f} s"
            f" left]{fits}"
        )
    files = [name.format(gpu="<GPU>") for name in returned.REPORT_FILES]
    lines += [
        f"   worst case {used:.0f} s of caps; a step past its cap or the budget is ended with "
        "its whole process group; the report is rewritten after every phase",
        f"   comes back: {out}/ {', '.join(files)} ({len(files)} files of at most "
        f"{returned.MAX_FILES}, each under {returned.MAX_FILE_BYTES // 2**20} MiB)",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpucheck", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="where the report goes (on a lent machine: $OUT, the folder that comes back)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="benchmark outputs and generated graphs (default: a temporary "
        "folder, removed afterwards)",
    )
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="the whole check")
    parser.add_argument("--tests-s", type=float, default=TESTS_S, help="the GPU tests' cap")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-benchmarks", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="show the plan and budget only")
    args = parser.parse_args(argv)
    start = time.monotonic()
    deadline = start + args.budget_s - REPORT_RESERVE_S
    if args.dry_run:
        plan = [] if args.skip_benchmarks else benches.steps(Path("<work>"))
        tests_s = 0.0 if args.skip_tests else args.tests_s
        print("\n".join(plan_lines(args.out, args.budget_s, tests_s, plan)))
        return 0
    argv = sys.argv[1:] if argv is None else argv
    command = "make gpu-check" + (f" ARGS={shlex.quote(shlex.join(argv))}" if argv else "")
    found = probe()
    if not found.cuda_available:
        print(found.no_gpu_line())
        if found.nvidia_smi:  # a GPU machine whose torch cannot use it: the probe says why
            report.write_report(args.out, found, [], "not run: no usable CUDA device", [], command)
        return 2
    print("\n".join(describe(found)), flush=True)
    env = child_env()
    outcomes, note, results = [], "GPU tests skipped (--skip-tests).", []
    with tempfile.TemporaryDirectory(prefix="gpucheck-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        plan = [] if args.skip_benchmarks else benches.steps(work)
        tests_log = work / "logs" / "gpu_tests.txt"

        def write(phase: str) -> tuple[Path, Path, list[report.Target]]:
            done = {r.name for r in results}
            logs = [("GPU tests", tests_log)] + [(s.name, s.log) for s in plan if s.log]
            return report.write_report(
                args.out,
                found,
                outcomes,
                note,
                results,
                command,
                phase=phase,
                not_started=[s.name for s in plan if s.name not in done],
                logs=logs,
            )

        def after_step(so_far: list[benches.StepResult]) -> None:
            results[:] = so_far
            write(so_far[-1].name)

        write("probe")
        signal.signal(signal.SIGTERM, _terminated)  # an outer timeout: end the step's group
        try:
            if not args.skip_tests:
                if "pytest" in found.missing:
                    note = "pytest missing: GPU tests not run."
                    outcomes = [
                        pytest_gate.Outcome("pytest", "skipped", "could not import 'pytest'")
                    ]
                else:
                    limit = min(args.tests_s, deadline - time.monotonic())
                    print(f"running the GPU tests (up to {limit:.0f} s) ...", flush=True)
                    begun = time.monotonic()
                    outcomes, tail = pytest_gate.run_gpu_tests(
                        ROOT, list(TESTPATHS), work / "gpu_tests.xml", env, limit, tests_log
                    )
                    note = (
                        f"pytest -m gpu over the GPU test files, {time.monotonic() - begun:.0f} s."
                    )
                    print(tail, flush=True)
                pytest_gate.judge(outcomes, found.missing)
                write("GPU tests")
            benches.run_steps(plan, ROOT, env, found.missing, deadline, after_each=after_step)
        except Terminated:
            write("ended by SIGTERM (an outer time limit)")
            print("ended by SIGTERM; the report holds every phase done before it")
            return 1
        md_path, json_path, targets = write("all phases")
    counts = pytest_gate.summary(outcomes)
    broken = [r for r in results if r.status in ("failed", "timeout")]
    for target in targets:
        print(f"{target.mark:>12}  {target.figure}: {target.value} (target {target.target})")
    print(
        f"tests: {counts['passed']} passed, {counts['failures']} failures, "
        f"{counts['explained']} not run for missing dependencies; benchmark steps: "
        f"{sum(r.status == 'ok' for r in results)} ok, {len(broken)} failed/timed out, "
        f"{sum(r.status == 'skipped' for r in results)} skipped; "
        f"{time.monotonic() - start:.0f} s"
    )
    problems = returned.problems(args.out)
    for problem in problems:
        print(f"would not come back from a lent machine: {problem}")
    print(f"report: {md_path}, {json_path} (commit them)")
    return 1 if counts["failures"] or broken or problems else 0
