"""``python -m gpucheck`` (``make gpu-check``): probe, GPU tests, benchmarks, report."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from pathlib import Path

from gpucheck import benches, pytest_gate, report
from gpucheck.probe import describe, probe

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("", "shared/src", "glagcn/src", "drag/src", "zerocopy-gcn/src")
TESTPATHS = ("shared/tests", "glagcn/tests", "drag/tests", "zerocopy-gcn/tests")
SITE = ".gpu-site"  # where `make gpu-check` installs the offline wheels it needs


def child_env() -> dict[str, str]:
    """Environment for the tests and benchmarks: the repository's sources first."""
    paths = [str(ROOT / s) if s else str(ROOT) for s in SOURCES]
    if (ROOT / SITE).is_dir():
        paths.append(str(ROOT / SITE))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpucheck", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "gpu",
        help="where the report goes (default benchmarks/gpu)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="benchmark outputs and generated graphs (default: a temporary "
        "folder, removed afterwards)",
    )
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument(
        "--part-budget",
        type=float,
        default=benches.PART_BUDGET_S,
        help="seconds per benchmark part",
    )
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-benchmarks", action="store_true")
    parser.add_argument("--test-timeout", type=float, default=900)
    args = parser.parse_args(argv)
    command = "make gpu-check" + (f" ARGS={shlex.quote(shlex.join(argv))}" if argv else "")
    found = probe()
    if not found.cuda_available:
        print(found.no_gpu_line())
        return 2
    print("\n".join(describe(found)), flush=True)
    env = child_env()
    outcomes, note = [], "GPU tests skipped (--skip-tests)."
    with tempfile.TemporaryDirectory(prefix="gpucheck-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_tests:
            if "pytest" in found.missing:
                note = "pytest missing: GPU tests not run."
                outcomes = [pytest_gate.Outcome("pytest", "skipped", "could not import 'pytest'")]
            else:
                print("running the GPU tests ...", flush=True)
                start = time.monotonic()
                outcomes, tail = pytest_gate.run_gpu_tests(
                    ROOT, list(TESTPATHS), work / "gpu_tests.xml", env, args.test_timeout
                )
                note = f"pytest -m gpu over the GPU test files, {time.monotonic() - start:.0f} s."
                print(tail, flush=True)
            pytest_gate.judge(outcomes, found.missing)
        results = []
        if not args.skip_benchmarks:
            results = benches.run_steps(
                benches.steps(work, args.out),
                ROOT,
                env,
                found.missing,
                tuple(args.parts),
                args.part_budget,
            )
        md_path, json_path, targets = report.write_report(
            args.out, found, outcomes, note, results, command
        )
    counts = pytest_gate.summary(outcomes)
    broken = [r for r in results if r.status in ("failed", "timeout")]
    for target in targets:
        print(f"{target.mark:>12}  {target.figure}: {target.value} (target {target.target})")
    print(
        f"tests: {counts['passed']} passed, {counts['failures']} failures, "
        f"{counts['explained']} not run for missing dependencies; benchmark steps: "
        f"{sum(r.status == 'ok' for r in results)} ok, {len(broken)} failed/timed out, "
        f"{sum(r.status == 'skipped' for r in results)} skipped"
    )
    print(f"report: {md_path} and {json_path} (commit them)")
    return 1 if counts["failures"] or broken else 0
