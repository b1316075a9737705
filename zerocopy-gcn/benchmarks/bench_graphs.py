"""Graphs the benchmark scripts share: ``PRESET:NODES:AVG_DEGREE`` on the command line, generated
once into the benchmarks' data root with the folder name training gives the same spec."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zerocopy_gcn.graph import ensure_rmat
from zerocopy_gcn.graph.dataset import preset_location


def graph_arg(text: str) -> dict[str, Any]:
    """``PRESET:NODES:AVG_DEGREE`` -> graph settings (the keys of a ``data`` config)."""
    try:
        preset, nodes, degree = text.split(":")
        return {"preset": preset, "num_nodes": int(nodes), "avg_degree": float(degree)}
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected PRESET:NODES:AVG_DEGREE, e.g. products_like:60000:25, got {text!r}"
        ) from error


def graph_parser(description: str | None, script: str | None = None) -> argparse.ArgumentParser:
    """A benchmark script's parser with the options every graph benchmark takes; ``--out``
    defaults to the script's own results folder, ``benchmarks/<script stem>/``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    out = Path(script).resolve().with_suffix("") if script else Path("benchmarks")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--data-root", type=Path, default=Path("data/bench"))
    parser.add_argument(
        "--graph",
        type=graph_arg,
        default=None,
        help="PRESET:NODES:AVG_DEGREE (default products_like:60000:25)",
    )
    return parser


def graph_folder(data_root: Path, data: Mapping[str, Any]) -> Path:
    """The folder of the preset graph ``data`` describes, generated where missing."""
    spec, folder = preset_location(data, Path(data_root).resolve())
    return ensure_rmat(folder, spec, name=data["preset"], progress=False)
