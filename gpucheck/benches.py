"""The GPU benchmarks of the three projects, called through their own benchmark scripts, in the
order of what they are most worth, within the one time budget of the whole check.

A GPU may be lent for one command of at most 10 minutes, perhaps only once, so the check runs
in 9 minutes: the GPU tests first, then these steps, most wanted first: zero-copy gather
bandwidth and GraphSAGE epochs (the zero-copy paper's two claims), GLA-GCN's training step
against the authors' form, DRAG's head overhead, the GPU sampler, the PyG loader path against
train.py, then GLA-GCN compiled and eager.  Each step has a time cap (``max_s``; sizes below
are chosen to finish well inside it on one H100); a step is not started when less than its
``min_s`` is left, and one that runs past its cap or the deadline is ended with its whole
process group.  Each step writes its project's own report (JSON + Markdown) into a scratch
folder; the GPU report embeds them.  A step whose dependencies are missing is skipped with the
reason.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpucheck.proc import run_in_group, tail
from gpucheck.pytest_gate import MODULE_IN_MESSAGE

GLAGCN_NEEDS = ("numpy", "omegaconf", "yaml")  # glagcn.model.build reads its config
GLAGCN_SPEED_STEP = "glagcn step vs the authors' form"
EPOCH_GRAPH = "products_like:100000:50"  # 5M stored edges, 100 fp32 features (40 MB)


@dataclass
class Step:
    name: str
    args: list[str]
    needs: tuple[str, ...]
    max_s: float  # its time cap
    min_s: float = 20.0  # not started with less time left before the deadline
    log: Path | None = None  # where its output goes (default: log.txt in its --out folder)


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | timeout | skipped
    command: str
    seconds: float = 0.0
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)  # the Markdown reports the step wrote


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def steps(work: Path) -> list[Step]:
    """The plan, most wanted first: each step's report, log and data go under ``work``."""
    py = sys.executable
    data = ["--data-root", str(work / "data")]
    graph = ["--graph", EPOCH_GRAPH]
    split = ["--split", "0.6", "0.02", "0.02"]  # epochs of 20 batches need few evaluation nodes
    zc = "zerocopy-gcn/benchmarks/"
    plan = [
        Step(
            "zerocopy gather",
            [
                py,
                zc + "gather_bandwidth.py",
                "--table-mb",
                "512",
                "--gather-mb",
                "32",
                "--repeats",
                "5",
                "--base-offsets",
                "0",
                "16",
            ],
            ("numpy",),  # without CuPy it measures the other modes and says so
            max_s=70,
            min_s=30,
        ),
        Step(
            "zerocopy epochs",
            [
                py,
                zc + "epoch_variants.py",
                *graph,
                *split,
                *data,
                "--epochs",
                "2",
                "--max-batches",
                "20",
                "--override",
                "sample_on=device",
                "--sweep-dir",
                str(work / "bench_epochs"),
            ],
            ("numpy", "hydra", "omegaconf", "yaml", "tqdm", "torch_geometric"),
            max_s=140,
            min_s=90,
        ),
        Step(
            GLAGCN_SPEED_STEP,
            [
                py,
                "glagcn/benchmarks/bench_speed.py",
                "--device",
                "cuda",
                "--rounds",
                "5",
            ],
            GLAGCN_NEEDS,
            max_s=55,
            min_s=40,
        ),
        Step(
            "drag",
            [
                py,
                "drag/benchmarks/throughput.py",
                "--device",
                "cuda",
                "--archs",
                "resnet101",
                "resnet18",
                "--warmup",
                "3",
                "--iters",
                "10",
            ],
            ("numpy", "torchvision", "sklearn", "scipy", "torch_geometric"),
            max_s=45,
            min_s=30,
        ),
        Step(
            "zerocopy sampler",
            [py, zc + "sampler_rates.py", *graph, *data, "--batches", "20"],
            ("numpy", "tqdm"),
            max_s=35,
            min_s=20,
        ),
        Step(
            "zerocopy PyG loader",
            [
                py,
                zc + "pyg_loader.py",
                *graph,
                *data,
                "--fetch",
                "zerocopy",
                "--device",
                "cuda",
                "--repeats",
                "2",
                "--epochs",
                "3",
            ],
            ("numpy", "hydra", "omegaconf", "yaml", "tqdm", "torch_geometric", "cupy"),
            max_s=60,
            min_s=35,
        ),
        Step(
            "glagcn bf16 compiled 243",
            [
                py,
                "glagcn/benchmarks/bench.py",
                "--device",
                "cuda",
                "--steps",
                "10",
                "--amp",
                "--compile",
                "--receptive-fields",
                "243",
            ],
            GLAGCN_NEEDS,
            max_s=45,
            min_s=40,
        ),
        Step(
            "glagcn fp32 eager",
            [py, "glagcn/benchmarks/bench.py", "--device", "cuda", "--steps", "10"],
            GLAGCN_NEEDS,
            max_s=30,
            min_s=20,
        ),
    ]
    for step in plan:
        step.args += ["--out", str(work / "reports" / slug(step.name))]
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
    deadline: float,
    log: Callable[[str], None] = print,
    after_each: Callable[[list[StepResult]], None] = lambda results: None,
) -> list[StepResult]:
    """Run the plan in order until ``deadline`` (``time.monotonic()``); ``after_each`` gets
    the results so far after every step (the report is rewritten each time)."""
    results: list[StepResult] = []
    for step in plan:
        command = " ".join(step.args[1:])
        lacking = [m for m in step.needs if m in missing]
        left = deadline - time.monotonic()
        if lacking:
            results.append(
                StepResult(step.name, "skipped", command, reason="missing " + ", ".join(lacking))
            )
        elif left < step.min_s:
            results.append(
                StepResult(
                    step.name,
                    "skipped",
                    command,
                    reason=f"time budget spent ({left:.0f} s left, needs {step.min_s:.0f} s)",
                )
            )
        else:
            limit = min(step.max_s, left)
            log(f"{step.name} (up to {limit:.0f} s; {left:.0f} s left in the budget)")
            results.append(_run(step, root, env, limit, missing))
            done = results[-1]
            log(f"{step.name}: {done.status} ({done.seconds:.0f} s) {done.reason}".rstrip())
        after_each(results)
    return results


def _run(
    step: Step, root: Path, env: dict[str, str], timeout: float, missing: dict[str, str]
) -> StepResult:
    out = _out_dir(step)
    shutil.rmtree(out, ignore_errors=True)  # no report of an earlier run may pass for this one
    out.mkdir(parents=True)
    log = step.log or out / "log.txt"
    start = time.monotonic()
    command = " ".join(step.args[1:])
    code = run_in_group(step.args, root, env, timeout, log)
    if code is None:
        status, reason = "timeout", f"ended after {timeout:.0f} s with its process group"
    elif code == 0:
        status, reason = "ok", ""
    else:
        status = "failed"
        reason = f"exit {code}: " + " | ".join(tail(log, 3).splitlines())
    data = read_json(out)
    absent = [m for m in MODULE_IN_MESSAGE.findall(reason) if m.split(".")[0] in missing]
    if status == "failed" and data and absent:  # e.g. the figures written, then no matplotlib
        status, reason = "ok", f"figures written; then stopped: {absent[0]} missing"
    return StepResult(
        step.name,
        status,
        command,
        time.monotonic() - start,
        reason,
        data,
        read_reports(out),
    )
