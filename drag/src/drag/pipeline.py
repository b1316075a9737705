"""Entry point of train.py / cluster_channels.py: run the configured stages in order."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from drag import CLASS_NAMES
from drag.data.formats import class_counts
from drag.engine import majority_rate
from drag.errors import DragInputError
from drag.runtime import Run
from drag.stages import STAGE_FUNCTIONS, STAGES
from trilab.distributed import init_distributed
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger
from trilab.seed import seed_everything
from trilab.stopping import StopSignal


def run(cfg, stage_functions: dict | None = None) -> dict:
    """``stage_functions`` replaces stages by name (a comparison's variant of one stage)."""
    functions = {**STAGE_FUNCTIONS, **(stage_functions or {})}
    stages = list(cfg.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise DragInputError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    stages = [s for s in STAGES if s in stages]  # always in recipe order
    out_dir = run_dir()
    work_dir = Path(cfg.work_dir) if cfg.get("work_dir") else out_dir
    with init_distributed(cfg.device) as ctx, RunLogger(out_dir, enabled=ctx.is_main) as log:
        generator = seed_everything(cfg.seed + ctx.rank, deterministic=cfg.deterministic)
        log.info(
            f"DRAG stages {stages} on {ctx.device} (world size {ctx.world_size}); "
            f"artefacts in {work_dir}"
        )
        if ctx.is_main:
            (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        state = Run(cfg=cfg, ctx=ctx, log=log, work_dir=work_dir, generator=generator)
        state.load_data()
        times = {}
        with StopSignal(ctx) as stop:
            state.stop = stop
            for number, stage in enumerate(stages):
                start = time.perf_counter()
                functions[stage](state)
                times[stage] = time.perf_counter() - start
                log.info(f"stage {stage} done in {times[stage]:.1f}s")
                if number + 1 < len(stages) and stop.requested(0, force=True):
                    state.stopped(f"after stage {stage}", None)
        state.flush_report()
        summary = summarize(state, times)
        log.write_metrics(summary)
        if work_dir != out_dir and ctx.is_main:
            (work_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary


def summarize(state: Run, times: dict) -> dict:
    """DRAG, the backbone-only baseline and the majority rate on the same test split."""

    def stage_metrics(name):
        path = state.stage_dir(name) / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else None

    test_labels = [s.label for s in state.splits["test"]]
    summary = {
        "class_names": list(CLASS_NAMES),
        "groups": int(state.cfg.groups),
        "backbone": state.cfg.model.arch,
        "image_size": int(state.cfg.data.image_size),
        "class_counts": {s: class_counts(v) for s, v in state.splits.items()},
        "majority_rate_test": majority_rate(test_labels),
        "baseline": stage_metrics("finetune_backbone"),
        "cluster": stage_metrics("cluster"),
        "pretrain_cgl": stage_metrics("pretrain_cgl"),
        "drag": stage_metrics("drag"),
        "stage_seconds": times,
        "skipped_files": len(state.report),
    }
    lines = [f"test majority-class rate {summary['majority_rate_test']:.4f}"]
    for key in ("baseline", "drag"):
        if summary[key]:
            test = summary[key]["test"]
            lines.append(
                f"{key}: test accuracy {test['accuracy']:.4f}, balanced "
                f"{test['balanced_accuracy']:.4f}, private recall "
                f"{test['per_class']['private']['recall']:.4f} "
                f"(threshold {summary[key]['threshold']:.3f} chosen on val)"
            )
    for line in lines:
        state.log.info(line)
    return summary
