"""Train one configuration per variant (same seed, same epochs) and compare their test errors.

``python -m glagcn.variants --out benchmarks --name padding
authors:model.temporal_padding=authors centred:model.temporal_padding=centred``

Each variant is ``LABEL:OVERRIDE[,OVERRIDE...]``; it runs ``train.py`` with those Hydra overrides
(plus any ``--common`` ones) into ``outputs/variants/NAME_LABEL`` and its ``metrics.json`` is
summarised in ``<out>/variants_NAME.json`` and ``.md``.  Without ``--common`` the default
configuration is trained: the synthetic demo set and the small model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
KEYS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm")


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, overrides = text.partition(":")
    if not label or not overrides:
        raise ValueError(f"variant {text!r} is not LABEL:OVERRIDE[,OVERRIDE...]")
    return label, overrides.split(",")


def run_variant(name: str, label: str, overrides: list[str], python: str = sys.executable
                ) -> dict:
    run_dir = PROJECT / "outputs" / "variants" / f"{name}_{label}"
    # a re-measurement replaces the variant's previous run
    command = [python, "train.py", *overrides, f"hydra.run.dir={run_dir}", "overwrite=true"]
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT, check=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"label": label, "overrides": overrides, "seconds": seconds,
            "selection": metrics.get("selection"), "epochs": metrics.get("epochs"),
            **{key: metrics[key] for key in KEYS if key in metrics},
            "baselines": metrics.get("baselines", {})}


def write_report(name: str, rows: list[dict], out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"variants_{name}.json").write_text(json.dumps(
        {"command": command, "rows": rows}, indent=2))
    lines = [f"# Variants: {name}", "", f"Command: `{command}`", "",
             "| variant | overrides | MPJPE mm | P-MPJPE mm | N-MPJPE mm | MPJVE mm | model "
             "selected | training + test time |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | `{' '.join(r['overrides'])}` | "
                     + " | ".join(f"{r.get(k, float('nan')):.2f}" for k in KEYS)
                     + f" | {r['selection']} | {r['seconds'] / 60:.1f} min |")
    lines += ["", "Test subjects of the synthetic set, mean over actions; same seed and epochs "
              "for every variant. Times from a shared 2-core machine."]
    path = out / f"variants_{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--common", nargs="*", default=[], help="overrides for every variant")
    parser.add_argument("variants", nargs="+", help="LABEL:OVERRIDE[,OVERRIDE...]")
    args = parser.parse_args(argv)
    variants = [parse_variant(text) for text in args.variants]
    rows = [run_variant(args.name, label, [*args.common, *overrides])
            for label, overrides in variants]
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "")
               + "python -m glagcn.variants --out benchmarks --name " + args.name
               + (" --common " + " ".join(args.common) if args.common else "")
               + " " + " ".join(args.variants))
    print(f"written {write_report(args.name, rows, args.out, command)}")


if __name__ == "__main__":
    main()
