"""The GPU benchmarks of the three projects, called through their own benchmark scripts, in two
parts that each get a fixed time budget (8 minutes on one H100: sizes below are chosen for that).

Part 1 is zerocopy-gcn (gather bandwidth, GPU vs CPU sampler, GraphSAGE epochs over the
variants its epoch script picks for a GPU machine); part 2 is GLA-GCN (fp32 eager and bf16
compiled training, inference; the training step against the frozen form of the authors' model)
and DRAG (images/s, head overhead).  Each step writes its project's own report (JSON + Markdown)
into a folder of its own beside the GPU report, which links to it; generated graphs and the
steps' logs stay in the scratch folder.  A step whose dependencies are missing is skipped with
the reason, and a step is not started when its part has too little time left.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpucheck.pytest_gate import MODULE_IN_MESSAGE

PART_BUDGET_S = 480.0
ZEROCOPY_NEEDS = ("numpy", "hydra", "omegaconf", "yaml", "torch_geometric", "tqdm")
GLAGCN_NEEDS = ("numpy",)
GLAGCN_SPEED_STEP = "glagcn step vs the authors' form"
EPOCH_GRAPH = "products_like:400000:50"  # 20M stored edges, 100 fp32 features (160 MB)


@dataclass
class Step:
    name: str
    part: int
    args: list[str]
    needs: tuple[str, ...]
    min_seconds: float = 30.0  # not started with less time left in its part
    log: Path | None = None  # where its output goes (default: log.txt in its --out folder)


@dataclass
class StepResult:
    name: str
    part: int
    status: str  # ok | failed | timeout | skipped
    command: str
    seconds: float = 0.0
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)  # the Markdown reports the step wrote


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def steps(work: Path, reports: Path) -> list[Step]:
    """The plan: each step's report goes to ``reports/<step>/``, its log and data to ``work``."""
    py = sys.executable
    data = ["--data-root", str(work / "data")]
    graph = ["--graph", EPOCH_GRAPH]
    split = ["--split", "0.6", "0.02", "0.02"]  # epochs of 40 batches need few evaluation nodes
    zc = "zerocopy-gcn/benchmarks/"
    plan = [
        Step(
            "zerocopy gather",
            1,
            [
                py,
                zc + "gather_bandwidth.py",
                "--table-mb",
                "1024",
                "--gather-mb",
                "64",
                "--repeats",
                "10",
                "--base-offsets",
                "0",
                "16",
            ],
            ZEROCOPY_NEEDS,
        ),
        Step(
            "zerocopy sampler",
            1,
            [py, zc + "sampler_rates.py", *graph, *data, "--batches", "40"],
            ZEROCOPY_NEEDS,
        ),
        Step(
            "zerocopy epochs",
            1,
            [
                py,
                zc + "epoch_variants.py",
                *graph,
                *split,
                *data,
                "--epochs",
                "3",
                "--max-batches",
                "40",
                "--override",
                "sample_on=device",
                "--sweep-dir",
                str(work / "bench_epochs"),
            ],
            ZEROCOPY_NEEDS,
            min_seconds=120,
        ),
        Step(
            "glagcn fp32 eager",
            2,
            [py, "glagcn/benchmarks/bench.py", "--device", "cuda", "--steps", "20"],
            GLAGCN_NEEDS,
        ),
        Step(
            GLAGCN_SPEED_STEP,
            2,
            [py, "glagcn/benchmarks/bench_speed.py", "--device", "cuda", "--rounds", "10"],
            GLAGCN_NEEDS,
            min_seconds=60,
        ),
    ]
    for receptive_field in (27, 81, 243):
        plan.append(
            Step(
                f"glagcn bf16 compiled {receptive_field}",
                2,
                [
                    py,
                    "glagcn/benchmarks/bench.py",
                    "--device",
                    "cuda",
                    "--steps",
                    "20",
                    "--amp",
                    "--compile",
                    "--receptive-fields",
                    str(receptive_field),
                ],
                GLAGCN_NEEDS,
                min_seconds=90,
            )
        )
    plan.append(
        Step(
            "drag",
            2,
            [
                py,
                "drag/benchmarks/throughput.py",
                "--device",
                "cuda",
                "--archs",
                "resnet101",
                "resnet50",
                "resnet18",
                "--warmup",
                "3",
                "--iters",
                "20",
            ],
            ("numpy", "torchvision", "sklearn", "scipy"),
        )
    )
    for step in plan:
        step.args += ["--out", str(reports / slug(step.name))]
        step.log = work / "logs" / f"{slug(step.name)}.txt"
    return plan


def _out_dir(step: Step) -> Path:
    return Path(step.args[step.args.index("--out") + 1])


def read_json(folder: Path) -> dict[str, Any]:
    """The JSON report a benchmark wrote into its folder (each writes exactly one)."""
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return json.loads(found[0].read_text()) if found else {}


def read_reports(folder: Path) -> list[str]:
    """The Markdown reports a benchmark wrote into its folder."""
    return [str(p) for p in sorted(folder.glob("*.md"))] if folder.is_dir() else []


def run_steps(
    plan: list[Step],
    root: Path,
    env: dict[str, str],
    missing: dict[str, str],
    parts: tuple[int, ...] = (1, 2),
    budget_s: float = PART_BUDGET_S,
    log=print,
) -> list[StepResult]:
    results = []
    for part in parts:
        deadline = time.monotonic() + budget_s
        for step in [s for s in plan if s.part == part]:
            command = " ".join(step.args[1:])
            lacking = [m for m in step.needs if m in missing]
            left = deadline - time.monotonic()
            if lacking:
                results.append(
                    StepResult(
                        step.name, part, "skipped", command, reason="missing " + ", ".join(lacking)
                    )
                )
            elif left < step.min_seconds:
                results.append(
                    StepResult(
                        step.name,
                        part,
                        "skipped",
                        command,
                        reason=f"part {part} time budget spent ({left:.0f} s left)",
                    )
                )
            else:
                log(f"[part {part}] {step.name} ({left:.0f} s left in this part)")
                results.append(_run(step, root, env, left, missing))
                done = results[-1]
                log(
                    f"[part {part}] {step.name}: {done.status} ({done.seconds:.0f} s) "
                    f"{done.reason}".rstrip()
                )
    return results


def _run(
    step: Step, root: Path, env: dict[str, str], timeout: float, missing: dict[str, str]
) -> StepResult:
    out = _out_dir(step)
    shutil.rmtree(out, ignore_errors=True)  # no report of an earlier run may pass for this one
    out.mkdir(parents=True)
    log = step.log or out / "log.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    command = " ".join(step.args[1:])
    try:
        done = subprocess.run(
            step.args, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
        log.write_text(done.stdout + done.stderr)
        status = "ok" if done.returncode == 0 else "failed"
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        reason = "" if status == "ok" else f"exit {done.returncode}: " + " | ".join(tail)
    except subprocess.TimeoutExpired as expired:
        log.write_text(str(expired.stdout or "") + str(expired.stderr or ""))
        status, reason = "timeout", f"stopped after {timeout:.0f} s (part budget)"
    data = read_json(out)
    absent = [m for m in MODULE_IN_MESSAGE.findall(reason) if m.split(".")[0] in missing]
    if status == "failed" and data and absent:  # e.g. the figures written, then no matplotlib
        status, reason = "ok", f"figures written; then stopped: {absent[0]} missing"
    return StepResult(
        step.name,
        step.part,
        status,
        command,
        time.monotonic() - start,
        reason,
        data,
        read_reports(out),
    )
