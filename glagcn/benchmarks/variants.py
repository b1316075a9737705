"""Train one configuration per variant (same seed, same epochs) and compare their test errors.

``python benchmarks/variants.py --name padding
authors:model.temporal_padding=authors centred:model.temporal_padding=centred``

Each variant is ``LABEL:OVERRIDE[,OVERRIDE...]``; it runs ``train.py`` with those Hydra overrides
(plus any ``--common`` ones) into ``outputs/variants/NAME_LABEL`` and its ``metrics.json`` is
summarised in ``variants_NAME.json`` and ``.md`` in ``benchmarks/variants/`` (or ``--out``).
Without ``--common`` the default configuration is trained: the synthetic demo set and the small
model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from trilab.bench import Column, command_line, write_report

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().with_suffix("")  # benchmarks/<this script's name>/
KEYS = ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm")


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, overrides = text.partition(":")
    if not label or not overrides:
        raise ValueError(f"variant {text!r} is not LABEL:OVERRIDE[,OVERRIDE...]")
    return label, overrides.split(",")


def run_variant(name: str, label: str, overrides: list[str], python: str = sys.executable) -> dict:
    run_dir = PROJECT / "outputs" / "variants" / f"{name}_{label}"
    # a re-measurement replaces the variant's previous run
    command = [python, "train.py", *overrides, f"hydra.run.dir={run_dir}", "overwrite=true"]
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT, check=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "label": label,
        "overrides": overrides,
        "seconds": seconds,
        "selection": metrics.get("selection"),
        "epochs": metrics.get("epochs"),
        **{key: metrics[key] for key in KEYS if key in metrics},
        "baselines": metrics.get("baselines", {}),
    }


COLUMNS = (
    Column("variant", "label"),
    Column("overrides", "overrides", lambda o: f"`{' '.join(o)}`"),
    *(
        Column(title, key, "{:.2f}", missing="nan")
        for title, key in zip(
            ("MPJPE mm", "P-MPJPE mm", "N-MPJPE mm", "MPJVE mm"), KEYS, strict=True
        )
    ),
    Column("model selected", "selection"),
    Column("training + test time", "seconds", lambda s: f"{s / 60:.1f} min"),
)


def report(name: str, rows: list[dict], out: Path, command: str) -> Path:
    notes = [
        "Test subjects of the synthetic set, mean over actions; same seed and epochs for "
        "every variant."
    ]
    _, md = write_report(
        out / f"variants_{name}", rows, COLUMNS, f"Variants: {name}", command, notes=notes
    )
    return md


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", required=True)
    parser.add_argument("--common", nargs="*", default=[], help="overrides for every variant")
    parser.add_argument("variants", nargs="+", help="LABEL:OVERRIDE[,OVERRIDE...]")
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(text) for text in args.variants]
    except ValueError as error:
        parser.error(str(error))  # one line, exit 2
    rows = [
        run_variant(args.name, label, [*args.common, *overrides]) for label, overrides in variants
    ]
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + command_line(
        argv, script=__file__
    )
    print(f"written {report(args.name, rows, args.out, command)}")


if __name__ == "__main__":
    main()
