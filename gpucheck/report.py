"""Figures beside their targets, in one Markdown + JSON report named after the GPU, with the
reports the projects' own benchmark scripts wrote embedded below (only the folder given with
``--out`` comes back from a lent machine, so nothing is linked); the steps' JSON is kept in the
report's JSON.

Targets: aligned zero-copy gather >= 85 % of a pinned host-to-device memcpy of the same bytes
for rows >= 256 B, and >= 2x the conventional path; GraphSAGE epoch with zero-copy within 1.3x
of all-in-GPU; DRAG's head <= 10 % over the backbone alone (ResNet-101, the paper's backbone);
GLA-GCN's fp32 training step >= 1.5x the frozen form of the authors' model with the same
outputs.  Everything else is in the embedded reports, without a target.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpucheck import returned
from gpucheck.benches import GLAGCN_SPEED_STEP, StepResult
from gpucheck.probe import Probe, describe
from gpucheck.pytest_gate import Outcome, summary

TARGET_ROW_BYTES = 256
MEMCPY_FRACTION = 0.85
CONVENTIONAL_RATIO = 2.0
EPOCH_RATIO = 1.3
DRAG_OVERHEAD_PCT = 10.0
DRAG_TARGET_ARCH = "resnet101"
GLAGCN_SPEEDUP = 1.5
SAME_OUTPUT_TOLERANCE = 1e-4  # relative, fp32 outputs of the two forms for the same weights


@dataclass
class Target:
    figure: str
    value: str
    target: str
    ok: bool | None  # None: not measured
    note: str = ""

    @property
    def mark(self) -> str:
        return {True: "pass", False: "**FAIL**", None: "not measured"}[self.ok]


def report_name(gpu_name: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", gpu_name or "no_gpu").strip("_")


def _data(results: list[StepResult], name: str) -> dict[str, Any]:
    for result in results:
        if result.name == name:
            return result.data
    return {}


def _why_missing(results: list[StepResult], name: str) -> str:
    for result in results:
        if result.name == name:
            return result.reason or result.status
    return "not run"


def gather_cells(gather: list[dict]) -> list[dict[str, Any]]:
    """One cell per (dtype, row size): each mode's GB/s, random ids."""
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for r in gather:
        if r["order"] != "random":
            continue
        key = (r["dtype"], r["row_bytes"])
        row = cells.setdefault(key, {"dtype": r["dtype"], "row_bytes": r["row_bytes"]})
        label = r["mode"] if r.get("base_offset", 0) == 0 else f"{r['mode']}@+{r['base_offset']}"
        row[label] = r["gbps"]
    return [cells[k] for k in sorted(cells, key=lambda k: (k[0], k[1]))]


def evaluate(results: list[StepResult]) -> list[Target]:
    """The targets, judged from the JSON reports the steps wrote."""
    targets: list[Target] = []
    gather = _data(results, "zerocopy gather").get("measurements", [])
    big = [r for r in gather_cells(gather) if r["row_bytes"] >= TARGET_ROW_BYTES]
    measured = [r for r in big if "zerocopy-aligned" in r and "memcpy" in r]
    why = (
        "CuPy missing or zero-copy not run: " + _why_missing(results, "zerocopy gather")
        if not measured
        else ""
    )
    fractions = [(r["zerocopy-aligned"] / r["memcpy"], r) for r in measured]
    ratios = [
        (r["zerocopy-aligned"] / r["conventional"], r) for r in measured if r.get("conventional")
    ]
    for label, values, threshold, text in (
        (
            "aligned zero-copy / pinned H2D memcpy, rows >= 256 B",
            fractions,
            MEMCPY_FRACTION,
            ">= 85 % in every cell",
        ),
        (
            "aligned zero-copy / conventional path, rows >= 256 B",
            ratios,
            CONVENTIONAL_RATIO,
            ">= 2x in every cell",
        ),
    ):
        if not values:
            targets.append(Target(label, "-", text, None, why))
            continue
        worst, row = min(values, key=lambda item: item[0])
        held = sum(v >= threshold for v, _ in values)
        shown = f"{worst:.0%}" if threshold < 1 else f"{worst:.2f}x"
        targets.append(
            Target(
                label,
                f"worst {shown} ({row['dtype']}, {row['row_bytes']} B); "
                f"{held}/{len(values)} cells hold",
                text,
                held == len(values),
            )
        )
    epochs = {r["variant"]: r for r in _data(results, "zerocopy epochs").get("rows", [])}
    for zero_copy, gpu in (
        ("zerocopy", "gpu"),
        ("zerocopy-prefetch", "gpu-prefetch"),
        ("zerocopy-cache", "gpu"),
        ("zerocopy-cache-prefetch", "gpu-prefetch"),
    ):
        label = f"epoch {zero_copy} / {gpu} (all in GPU)"
        if zero_copy in epochs and gpu in epochs:
            ratio = epochs[zero_copy]["epoch_s"] / epochs[gpu]["epoch_s"]
            targets.append(
                Target(
                    label,
                    f"{ratio:.2f}x ({epochs[zero_copy]['epoch_s']:.2f} s vs "
                    f"{epochs[gpu]['epoch_s']:.2f} s)",
                    "<= 1.3x",
                    ratio <= EPOCH_RATIO,
                )
            )
        else:
            targets.append(
                Target(label, "-", "<= 1.3x", None, _why_missing(results, "zerocopy epochs"))
            )
    drag = _data(results, "drag").get("rows", [])
    target_rows = [r for r in drag if r["arch"] == DRAG_TARGET_ARCH]
    if target_rows:
        overhead = target_rows[0]["drag_overhead_pct"]
        targets.append(
            Target(
                f"DRAG head overhead over the backbone ({DRAG_TARGET_ARCH}, 448x448)",
                f"{overhead:.1f} %",
                "<= 10 %",
                overhead <= DRAG_OVERHEAD_PCT,
            )
        )
    else:
        targets.append(
            Target(
                f"DRAG head overhead ({DRAG_TARGET_ARCH}, 448x448)",
                "-",
                "<= 10 %",
                None,
                _why_missing(results, "drag"),
            )
        )
    speed = _data(results, GLAGCN_SPEED_STEP).get("rows", [])
    label = "GLA-GCN fp32 training step / the authors' form (27-243 frames, batch 64 and 512)"
    if speed:
        worst = min(speed, key=lambda r: r["speedup"])
        held = sum(r["speedup"] >= GLAGCN_SPEEDUP for r in speed)
        difference = max(r["max_relative_difference"]["eval_output"] for r in speed)
        same = difference <= SAME_OUTPUT_TOLERANCE
        targets.append(
            Target(
                label,
                f"worst {worst['speedup']:.2f}x ({worst['receptive_field']} "
                f"frames, batch {worst['batch']}); {held}/{len(speed)} cells hold; "
                f"outputs differ by {difference:.1e} (relative)",
                ">= 1.5x in every cell, same outputs",
                held == len(speed) and same,
            )
        )
    else:
        targets.append(
            Target(
                label,
                "-",
                ">= 1.5x in every cell, same outputs",
                None,
                _why_missing(results, GLAGCN_SPEED_STEP),
            )
        )
    return targets


EMBEDDED_REPORT_CHARS = 64_000  # per step report, so the Markdown stays far under 16 MiB


def embedded_reports(result: StepResult) -> list[str]:
    """The step's own Markdown reports, headings moved two levels down, for the GPU report
    (only the GPU report's folder comes back from a lent machine)."""
    lines = []
    for path in result.reports:
        text = Path(path).read_text(errors="replace")
        if len(text) > EMBEDDED_REPORT_CHARS:
            text = text[:EMBEDDED_REPORT_CHARS] + "\n\n(cut: the report was longer)\n"
        lines += ["", f"### {result.name}: `{Path(path).name}`", ""]
        lines += [f"##{line}" if line.startswith("#") else line for line in text.splitlines()]
    return lines


def markdown(
    found: Probe,
    outcomes: list[Outcome],
    tests_note: str,
    results: list[StepResult],
    targets: list[Target],
    command: str,
    created: str,
    phase: str,
    not_started: list[str],
) -> str:
    counts = summary(outcomes)
    lines = [
        f"# GPU check: {found.gpu_name or 'no GPU'}",
        "",
        f"Command: `{command}` ({created}); written after: **{phase}**",
        "",
    ]
    lines += (
        [f"- {line}" for line in describe(found)]
        if found.cuda_available
        else [f"- {found.no_gpu_line()}"]
    )
    lines += ["", "## Targets", "", "| figure | measured | target | result |", "|---|---|---|---|"]
    for t in targets:
        lines.append(
            f"| {t.figure} | {t.value}{' (' + t.note + ')' if t.note else ''} | "
            f"{t.target} | {t.mark} |"
        )
    lines += [
        "",
        "## GPU tests",
        "",
        f"{counts['passed']} passed, {counts['failures']} failures (failed, errors, or "
        f"skipped without a missing dependency to explain it), {counts['explained']} not "
        f"run for a missing dependency. {tests_note}",
        "",
    ]
    for o in outcomes:
        if o.verdict != "ok":
            lines.append(f"- {o.verdict}: `{o.test}` {o.outcome}: {o.message[:200]}")
    lines += [
        "",
        "## Benchmark steps (most wanted first, one time budget for the whole check)",
        "",
        "Each step is a project's own benchmark script; its report (tables, the command "
        "and the machine) follows below.",
        "",
        "| step | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.reason} |")
    for name in not_started:
        lines.append(f"| {name} | not reached yet | - | |")
    lines += ["", "## The steps' own reports"]
    for r in results:
        lines += embedded_reports(r)
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    found: Probe,
    outcomes: list[Outcome],
    tests_note: str,
    results: list[StepResult],
    command: str,
    phase: str = "all phases",
    not_started: list[str] | None = None,
    logs: list[tuple[str, Path]] | None = None,
) -> tuple[Path, Path, list[Target]]:
    """Write (replace) the report: ``<GPU>.md``, ``<GPU>.json`` and ``<GPU>.log.txt``.  Called
    after every phase, so a run ended early still leaves the report of what it did."""
    targets = evaluate(results)
    created = time.strftime("%Y-%m-%d %H:%M %Z")
    out.mkdir(parents=True, exist_ok=True)
    name = report_name(found.gpu_name)
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    not_started = not_started or []
    returned.write_atomic(
        md_path,
        markdown(
            found, outcomes, tests_note, results, targets, command, created, phase, not_started
        ),
    )
    steps = [
        {
            **{k: v for k, v in asdict(r).items() if k != "reports"},
            "reports": [Path(p).name for p in r.reports],
        }
        for r in results
    ]
    payload = {
        "command": command,
        "created": created,
        "phase": phase,
        "probe": found.to_dict(),
        "tests": {
            "summary": summary(outcomes),
            "note": tests_note,
            "outcomes": [asdict(o) for o in outcomes],
        },
        "steps": steps,
        "not_started": not_started,
        "targets": [{**asdict(t), "result": t.mark} for t in targets],
    }
    returned.write_atomic(json_path, json.dumps(payload, indent=2, default=str))
    if logs:
        returned.write_atomic(out / f"{name}.log.txt", returned.log_text(logs))
    return md_path, json_path, targets
