"""Figures beside their targets, written as one markdown + JSON report named after the GPU.

Targets (issue 14): aligned zero-copy gather >= 85 % of a pinned host-to-device memcpy of the
same bytes for rows >= 256 B, and >= 2x the conventional path; GraphSAGE epoch with zero-copy
within 1.3x of all-in-GPU; DRAG's head <= 10 % over the backbone alone (ResNet-101, the
paper's backbone); GLA-GCN's fp32 training step >= 1.5x the frozen form of the authors' model
with the same outputs.  Everything else is reported without a target.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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


def gather_table(gather: list[dict]) -> list[dict[str, Any]]:
    """One row per (dtype, row size): each mode's GB/s, random ids."""
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for r in gather:
        if r["order"] != "random":
            continue
        key = (r["dtype"], r["row_bytes"])
        row = cells.setdefault(key, {"dtype": r["dtype"], "row_bytes": r["row_bytes"]})
        label = r["mode"] if r.get("base_offset", 0) == 0 else f"{r['mode']}@+{r['base_offset']}"
        row[label] = r["gbps"]
    return [cells[k] for k in sorted(cells, key=lambda k: (k[0], k[1]))]


def evaluate(results: list[StepResult]) -> tuple[list[Target], dict[str, Any]]:
    targets: list[Target] = []
    tables: dict[str, Any] = {}
    gather = _data(results, "zerocopy gather").get("gather", [])
    tables["gather"] = gather_table(gather)
    big = [r for r in tables["gather"] if r["row_bytes"] >= TARGET_ROW_BYTES]
    measured = [r for r in big if "zerocopy-aligned" in r and "memcpy" in r]
    why = ("CuPy missing or zero-copy not run: " + _why_missing(results, "zerocopy gather")
           if not measured else "")
    fractions = [(r["zerocopy-aligned"] / r["memcpy"], r) for r in measured]
    ratios = [(r["zerocopy-aligned"] / r["conventional"], r) for r in measured
              if r.get("conventional")]
    for label, values, threshold, text in (
            ("aligned zero-copy / pinned H2D memcpy, rows >= 256 B", fractions, MEMCPY_FRACTION,
             ">= 85 % in every cell"),
            ("aligned zero-copy / conventional path, rows >= 256 B", ratios, CONVENTIONAL_RATIO,
             ">= 2x in every cell")):
        if not values:
            targets.append(Target(label, "-", text, None, why))
            continue
        worst, row = min(values, key=lambda item: item[0])
        held = sum(v >= threshold for v, _ in values)
        shown = f"{worst:.0%}" if threshold < 1 else f"{worst:.2f}x"
        targets.append(Target(label, f"worst {shown} ({row['dtype']}, {row['row_bytes']} B); "
                              f"{held}/{len(values)} cells hold", text, held == len(values)))
    epochs = {r["variant"]: r for r in _data(results, "zerocopy epochs").get("end_to_end", [])}
    tables["epochs"] = list(epochs.values())
    for zero_copy, gpu in (("zerocopy", "gpu"), ("zerocopy+prefetch", "gpu+prefetch"),
                           ("zerocopy+cache", "gpu"), ("zerocopy+cache+prefetch",
                                                       "gpu+prefetch")):
        label = f"epoch {zero_copy} / {gpu} (all in GPU)"
        if zero_copy in epochs and gpu in epochs:
            ratio = epochs[zero_copy]["epoch_s"] / epochs[gpu]["epoch_s"]
            targets.append(Target(label, f"{ratio:.2f}x ({epochs[zero_copy]['epoch_s']:.2f} s vs "
                                  f"{epochs[gpu]['epoch_s']:.2f} s)", "<= 1.3x",
                                  ratio <= EPOCH_RATIO))
        else:
            targets.append(Target(label, "-", "<= 1.3x", None,
                                  _why_missing(results, "zerocopy epochs")))
    drag = _data(results, "drag").get("results", [])
    tables["drag"] = drag
    target_rows = [r for r in drag if r["arch"] == DRAG_TARGET_ARCH]
    if target_rows:
        overhead = target_rows[0]["drag_overhead_pct"]
        targets.append(Target(f"DRAG head overhead over the backbone ({DRAG_TARGET_ARCH}, "
                              "448x448)", f"{overhead:.1f} %", "<= 10 %",
                              overhead <= DRAG_OVERHEAD_PCT))
    else:
        targets.append(Target(f"DRAG head overhead ({DRAG_TARGET_ARCH}, 448x448)", "-",
                              "<= 10 %", None, _why_missing(results, "drag")))
    speed = _data(results, GLAGCN_SPEED_STEP).get("rows", [])
    tables["glagcn_speed"] = speed
    label = "GLA-GCN fp32 training step / the authors' form (27-243 frames, batch 64 and 512)"
    if speed:
        worst = min(speed, key=lambda r: r["speedup"])
        held = sum(r["speedup"] >= GLAGCN_SPEEDUP for r in speed)
        difference = max(r["max_relative_difference"]["eval_output"] for r in speed)
        same = difference <= SAME_OUTPUT_TOLERANCE
        targets.append(Target(label, f"worst {worst['speedup']:.2f}x ({worst['receptive_field']} "
                              f"frames, batch {worst['batch']}); {held}/{len(speed)} cells hold; "
                              f"outputs differ by {difference:.1e} (relative)",
                              ">= 1.5x in every cell, same outputs",
                              held == len(speed) and same))
    else:
        targets.append(Target(label, "-", ">= 1.5x in every cell, same outputs", None,
                              _why_missing(results, GLAGCN_SPEED_STEP)))
    tables["sampler"] = _data(results, "zerocopy sampler").get("sampler", [])
    tables["glagcn"] = _glagcn_rows(results)
    return targets, tables


def _glagcn_rows(results: list[StepResult]) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for result in results:
        if not result.name.startswith("glagcn") or result.name == GLAGCN_SPEED_STEP:
            continue
        variant = "fp32_eager" if "fp32" in result.name else "bf16_compiled"
        for r in result.data.get("rows", []):
            row = rows.setdefault(r["receptive_field"], {"receptive_field": r["receptive_field"]})
            row[f"{variant}_train_frames_per_s"] = r.get("train_frames_per_s")
            row[f"{variant}_infer_frames_per_s"] = r.get("infer_frames_per_s")
    return [rows[k] for k in sorted(rows)]


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(found: Probe, outcomes: list[Outcome], tests_note: str,
             results: list[StepResult], targets: list[Target], tables: dict[str, Any],
             command: str, created: str) -> str:
    counts = summary(outcomes)
    lines = [f"# GPU check: {found.gpu_name or 'no GPU'}", "",
             f"Command: `{command}` ({created})", ""]
    lines += [f"- {line}" for line in describe(found)] if found.cuda_available else \
        [f"- {found.no_gpu_line()}"]
    lines += ["", "## Targets", "", "| figure | measured | target | result |", "|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t.figure} | {t.value}{' (' + t.note + ')' if t.note else ''} | "
                     f"{t.target} | {t.mark} |")
    lines += ["", "## GPU tests", "",
              f"{counts['passed']} passed, {counts['failures']} failures (failed, errors, or "
              f"skipped without a missing dependency to explain it), {counts['explained']} not "
              f"run for a missing dependency. {tests_note}", ""]
    for o in outcomes:
        if o.verdict != "ok":
            lines.append(f"- {o.verdict}: `{o.test}` {o.outcome}: {o.message[:200]}")
    lines += ["", "## Benchmark steps (two parts, 8 minutes each)", "",
              "| part | step | status | seconds | note |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.part} | {r.name} | {r.status} | {r.seconds:.0f} | {r.reason} |")
    if tables.get("gather"):
        modes = ["memcpy", "conventional", "zerocopy-aligned", "zerocopy-aligned@+16",
                 "zerocopy-naive", "zerocopy-naive@+16", "gpu"]
        lines += ["", "## Gather GB/s (random ids; memcpy = pinned host-to-device copy of the "
                  "same bytes; @+16 = table starting 16 B after a 128-B line)", "",
                  "| dtype | row B | " + " | ".join(modes) + " | zero-copy % of memcpy | "
                  "zero-copy / conventional |", "|---|---|" + "---|" * (len(modes) + 2)]
        for r in tables["gather"]:
            fraction = r.get("zerocopy-aligned", 0) / r["memcpy"] if r.get("memcpy") else None
            ratio = (r["zerocopy-aligned"] / r["conventional"]
                     if r.get("zerocopy-aligned") and r.get("conventional") else None)
            lines.append(f"| {r['dtype']} | {r['row_bytes']} | " +
                         " | ".join(_fmt(r.get(m)) for m in modes) +
                         f" | {_fmt(fraction, '.0%') if fraction else '-'} | {_fmt(ratio)} |")
    if tables.get("epochs"):
        lines += ["", "## GraphSAGE epochs (seconds; warm = mean after the first epoch)", "",
                  "| variant | warm epoch | sample | fetch | train | stall | cold epoch | "
                  "cache hit rate |", "|---|---|---|---|---|---|---|---|"]
        for r in tables["epochs"]:
            lines.append(f"| {r['variant']} | {r['epoch_s']:.2f} | {r['sample_s']:.2f} | "
                         f"{r['fetch_s']:.2f} | {r['train_s']:.2f} | {r['stall_s']:.2f} | "
                         f"{r['cold']['epoch_s']:.2f} | {_fmt(r.get('cache_hit_rate'), '.1%')} |")
    if tables.get("sampler"):
        lines += ["", "## Neighbour sampler", "", "| device | sampled edges/s |", "|---|---|"]
        lines += [f"| {r['device']} | {r['edges_per_s']:.3g} |" for r in tables["sampler"]]
    if tables.get("glagcn"):
        lines += ["", "## GLA-GCN frames/s", "", "| receptive field | train fp32 eager | train "
                  "bf16 compiled | inference fp32 eager | inference bf16 compiled |",
                  "|---|---|---|---|---|"]
        for r in tables["glagcn"]:
            lines.append(f"| {r['receptive_field']} | "
                         f"{_fmt(r.get('fp32_eager_train_frames_per_s'), '.0f')} | "
                         f"{_fmt(r.get('bf16_compiled_train_frames_per_s'), '.0f')} | "
                         f"{_fmt(r.get('fp32_eager_infer_frames_per_s'), '.0f')} | "
                         f"{_fmt(r.get('bf16_compiled_infer_frames_per_s'), '.0f')} |")
    if tables.get("glagcn_speed"):
        lines += ["", "## GLA-GCN training step against the authors' form (fp32 eager, same "
                  "weights; `glagcn/benchmarks/bench_speed.py`)", "",
                  "| frames | batch | authors' form ms/step | this ms/step | speed-up | max rel. "
                  "difference of outputs |", "|---|---|---|---|---|---|"]
        for r in tables["glagcn_speed"]:
            lines.append(f"| {r['receptive_field']} | {r['batch']} | "
                         f"{r['reference_step_ms']:.1f} | {r['this_step_ms']:.1f} | "
                         f"{r['speedup']:.2f}x | "
                         f"{r['max_relative_difference']['eval_output']:.1e} |")
    if tables.get("drag"):
        lines += ["", "## DRAG at 448x448", "", "| backbone | backbone img/s | DRAG img/s | "
                  "head overhead |", "|---|---|---|---|"]
        for r in tables["drag"]:
            lines.append(f"| {r['arch']} | {r['backbone_images_per_s']:.1f} | "
                         f"{r['drag_images_per_s']:.1f} | {r['drag_overhead_pct']:.1f} % |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, found: Probe, outcomes: list[Outcome], tests_note: str,
                 results: list[StepResult], command: str) -> tuple[Path, Path, list[Target]]:
    targets, tables = evaluate(results)
    created = time.strftime("%Y-%m-%d %H:%M %Z")
    out.mkdir(parents=True, exist_ok=True)
    name = report_name(found.gpu_name)
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    md_path.write_text(markdown(found, outcomes, tests_note, results, targets, tables, command,
                                created))
    payload = {"command": command, "created": created, "probe": found.to_dict(),
               "tests": {"summary": summary(outcomes), "note": tests_note,
                         "outcomes": [asdict(o) for o in outcomes]},
               "steps": [asdict(r) for r in results],
               "targets": [{**asdict(t), "result": t.mark} for t in targets],
               "tables": tables}
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    return md_path, json_path, targets
