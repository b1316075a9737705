"""The README's demo table from a run's ``metrics.json``: ``demo_table.py METRICS [--out STEM]``
writes STEM.json (the metrics) and STEM.md (the table, with the command that made the run);
STEM is ``benchmarks/demo_table/demo_cpu`` unless given."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/

COLUMNS = (
    ("MPJPE mm", "mpjpe_mm"),
    ("P-MPJPE mm", "p_mpjpe_mm"),
    ("N-MPJPE mm", "n_mpjpe_mm"),
    ("MPJVE mm", "mpjve_mm"),
)
ROWS = (
    ("mean training pose", ("baselines", "mean_pose")),
    ("per-frame linear regression 2D -> 3D", ("baselines", "linear_regression")),
    ("GLA-GCN, small demo model ({selection})", ()),
)


def _at(metrics: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        metrics = metrics[key]
    return metrics


def table(metrics: dict, command: str) -> str:
    header = "| on the synthetic test subjects | " + " | ".join(c for c, _ in COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 1)]
    for label, path in ROWS:
        values = _at(metrics, path)
        label = label.format(selection=metrics.get("selection", ""))
        lines.append(f"| {label} | " + " | ".join(f"{values[k]:.1f}" for _, k in COLUMNS) + " |")
    actions = metrics["per_action"]
    lines += [
        "",
        "| action (takes grouped) | " + " | ".join(actions) + " |",
        "|" + " --- |" * (len(actions) + 1),
        "| MPJPE mm | " + " | ".join(f"{a['mpjpe_mm']:.1f}" for a in actions.values()) + " |",
    ]
    lines += [
        "",
        f"{metrics['frames']} test frames in {len(metrics['per_take'])} takes "
        f"({len(actions)} actions); MPJPE with the prediction's own root moved to the "
        f"origin (not the authors' score): {metrics['mpjpe_root_centred_mm']:.1f} mm.",
        f"Made by `{command}` on {platform.machine()} / {platform.processor() or 'cpu'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path)
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "demo_cpu", help="output path without suffix"
    )
    parser.add_argument("--command", default="make -C glagcn figures")
    args = parser.parse_args(argv)
    metrics = json.loads(args.metrics.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    args.out.with_suffix(".md").write_text(table(metrics, args.command))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
