"""Run every GPU test and judge the outcome: on a GPU machine a skipped GPU test is a failure,
unless the skip names a dependency the probe reported missing.

Only the test files that mark tests ``gpu`` are collected (a file without GPU tests that fails
to import on this machine says nothing about the GPU paths).  pytest writes a JUnit XML file;
each ``<testcase>`` holds ``<failure>``, ``<error>`` or ``<skipped message=...>`` when it did not
pass, and a collection error is a testcase whose ``<error>`` carries the import message.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path

from gpucheck.proc import run_in_group, tail

PER_TEST_TIMEOUT_S = 40
GPU_MARK = re.compile(r"(pytest\.)?mark\.gpu\b")
MODULE_IN_MESSAGE = re.compile(r"(?:could not import|No module named) '([\w.]+)'")


@dataclass
class Outcome:
    test: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""
    verdict: str = "ok"  # ok | failure | explained (skip/import error due to a missing dependency)


def gpu_test_files(root: Path, testpaths: list[str]) -> list[Path]:
    files = []
    for folder in testpaths:
        for path in sorted((root / folder).rglob("test_*.py")):
            if GPU_MARK.search(path.read_text(errors="replace")):
                files.append(path)
    return files


def parse_junit(path: Path) -> list[Outcome]:
    outcomes = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = ".".join(filter(None, [case.get("classname"), case.get("name")]))
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                # a collection error's message is just "collection failure"; the import
                # error it hides is in the element's text
                message = "\n".join(
                    filter(None, [element.get("message"), (element.text or "").strip()])
                )
                break
        outcomes.append(Outcome(name, outcome, message))
    return outcomes


def judge(outcomes: list[Outcome], missing: dict[str, str]) -> list[Outcome]:
    """Set each outcome's verdict: skips and import errors are failures unless explained."""
    for outcome in outcomes:
        if outcome.outcome == "passed":
            outcome.verdict = "ok"
            continue
        modules = {m.split(".")[0] for m in MODULE_IN_MESSAGE.findall(outcome.message)}
        explained = outcome.outcome in ("skipped", "error") and modules and modules <= set(missing)
        outcome.verdict = "explained" if explained else "failure"
    return outcomes


def run_gpu_tests(
    root: Path,
    testpaths: list[str],
    junit: Path,
    env: dict[str, str],
    timeout: float,
    log: Path | None = None,
) -> tuple[list[Outcome], str]:
    """Run ``pytest -m gpu`` over the GPU test files, its output in ``log`` and its process
    group ended after ``timeout``; (outcomes, pytest's last lines)."""
    files = gpu_test_files(root, testpaths)
    if not files:
        return [], "no GPU test files found"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-v",  # one line per test as it ends: what the log still holds if the cap ends pytest
        "-rs",
        "-p",
        "no:cacheprovider",
        # one hung test is ended on its own (pytest-timeout; the repo's 300 s is for CI) and
        # the session still writes its JUnit file, instead of the whole cap ending it
        "-o",
        f"timeout={PER_TEST_TIMEOUT_S}",
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        *[str(f.relative_to(root)) for f in files],
    ]
    code = run_in_group(command, root, env, timeout, log or junit.with_suffix(".log"))
    tail_text = tail(log or junit.with_suffix(".log"))
    if code is None:
        tail_text += f"\npytest did not finish within {timeout:.0f} s (its process group ended)"
    if not junit.is_file():
        # pytest writes its JUnit file only when the session ends: take what the log shows
        finished = parse_verbose_log(log or junit.with_suffix(".log"))
        return [*finished, Outcome("pytest", "error", tail_text, "failure")], tail_text
    return parse_junit(junit), tail_text


VERBOSE_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b(.*)$")


def parse_verbose_log(log: Path) -> list[Outcome]:
    """The tests ``pytest -v`` reported finished in ``log`` (``path::test OUTCOME [ n%]``), as
    outcomes; a skip's reason is only in the summary, so a skip reads as skipped without it."""
    outcomes = []
    text = log.read_text(errors="replace") if log.is_file() else ""
    for line in text.splitlines():
        found = VERBOSE_LINE.match(line.strip())
        if found:
            test, word, rest = found.groups()
            outcome = {"PASSED": "passed", "XFAIL": "passed", "XPASS": "passed"}.get(
                word, word.lower()
            )
            outcomes.append(Outcome(test.replace("::", "."), outcome, rest.strip()))
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "failures": 0, "explained": 0}
    for outcome in outcomes:
        counts[outcome.outcome] += 1
        if outcome.verdict in ("failure", "explained"):
            counts[{"failure": "failures", "explained": "explained"}[outcome.verdict]] += 1
    return counts


def as_dicts(outcomes: list[Outcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
