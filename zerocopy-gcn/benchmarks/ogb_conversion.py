"""Time and peak memory of converting papers100M-shaped OGB binary folders, and a projection.

    python benchmarks/ogb_conversion.py --nodes 1000000 4000000 --out benchmarks

For each size a synthetic ``raw/data.npz`` folder with papers100M's shape (14.5 one-way edges
per node, 128 fp16 features, 1.4 % labelled) is generated, then converted in a fresh child
process that reports its wall time and two peaks:

* ``peak_rss``: the kernel's high-water mark of the resident set (``ru_maxrss``), which also
  counts file pages of the memory-mapped outputs the builder touched (reclaimable page cache);
* ``peak_anon``: the highest anonymous (heap) resident memory seen by sampling
  ``/proc/self/status`` every 20 ms: what the conversion itself holds.

The papers100M projection fits time and peaks linearly in the node count (the edge count grows
in proportion at this density) and evaluates the fit at 111,059,956 nodes.  Writes
``ogb_binary_conversion.{json,md}`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from trilab.bench import Column, command_line, machine, write_report
from zerocopy_gcn.graph.ogb_synthetic import (
    PAPERS100M_DEGREE,
    PAPERS100M_EDGES,
    PAPERS100M_NODES,
    write_ogb_binary_folder,
)

OUTPUT = "ogb_binary_conversion"


def _anon_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure_one(root: Path, out: Path) -> dict[str, Any]:
    """Convert ``root`` into ``out`` in this process; seconds and memory peaks."""
    from zerocopy_gcn.graph import convert_ogb_node_folder

    baseline = _anon_bytes()  # the interpreter with numpy and torch imported
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _anon_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    convert_ogb_node_folder(root, out, progress=False)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _anon_bytes())
    return {
        "seconds": seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_anon_bytes": peak[0],
        "baseline_anon_bytes": baseline,
    }


def _fit(nodes: list[int], values: list[float], at: int) -> float:
    slope, intercept = np.polyfit(np.asarray(nodes, float), np.asarray(values, float), 1)
    return float(slope * at + intercept)


GIB = 2**30
COLUMNS = [
    Column("nodes", "num_nodes", "{:,}"),
    Column("edges (one-way)", "num_edges", "{:,}"),
    Column("input GB", "input_bytes", lambda v: f"{v / 1e9:.2f}"),
    Column("output GB", "output_bytes", lambda v: f"{v / 1e9:.2f}"),
    Column("seconds", "seconds", "{:.1f}"),
    Column("peak anonymous (heap) GiB", "peak_anon_bytes", lambda v: f"{v / GIB:.2f}"),
    Column(
        "of which the interpreter before converting",
        "baseline_anon_bytes",
        lambda v: f"{v / GIB:.2f}",
    ),
    Column("peak RSS incl. mapped output pages GiB", "peak_rss_bytes", lambda v: f"{v / GIB:.2f}"),
]


def notes(projection: dict[str, float] | None) -> list[str]:
    lines = [
        "Input: synthetic `raw/data.npz` + `raw/node-label.npz` + `split/time/*.csv.gz` "
        f"with papers100M's shape ({PAPERS100M_DEGREE:.2f} one-way edges per node, "
        "128 float16 features, 1.4 % labelled), converted with reverse edges added. "
        "Each conversion runs in a fresh process."
    ]
    if projection:
        p = projection
        lines.append(
            f"Projection for ogbn-papers100M ({PAPERS100M_NODES:,} nodes, "
            f"{PAPERS100M_EDGES:,} edges; linear fit in the node count over the rows "
            f"above): about {p['seconds'] / 3600:.1f} h on this machine, peak anonymous "
            f"memory about {p['peak_anon_bytes'] / GIB:.1f} GiB, input "
            f"{p['input_bytes'] / 1e9:.0f} GB, output {p['output_bytes'] / 1e9:.0f} GB. "
            "The resident set also holds pages of the memory-mapped `indices.npy` "
            "while it is filled; they are page cache the kernel reclaims under "
            "pressure, so the anonymous peak is what must fit in RAM."
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("data/ogb_conversion"),
        help="where the synthetic inputs and outputs go (removed afterwards)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument(
        "--measure-one", nargs=2, type=Path, metavar=("ROOT", "OUT"), help=argparse.SUPPRESS
    )  # child process mode
    args = parser.parse_args(argv)
    if args.measure_one:
        print(json.dumps(measure_one(*args.measure_one)))
        return None
    command = command_line(argv, __file__)
    info = machine()
    runs = []
    for num_nodes in args.nodes:
        root = args.work / f"ogbn_synthetic_{num_nodes}"
        out = args.work / f"converted_{num_nodes}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        write_ogb_binary_folder(root, num_nodes, progress=False)
        generated = time.perf_counter() - start
        child = subprocess.run(
            [sys.executable, __file__, "--measure-one", str(root), str(out)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        meta = json.loads((out / "meta.json").read_text())
        runs.append(
            {
                "num_nodes": num_nodes,
                "num_edges": int(round(num_nodes * PAPERS100M_DEGREE)),
                "stored_edges": meta["num_edges"],
                "generate_seconds": generated,
                "input_bytes": _folder_bytes(root),
                "output_bytes": _folder_bytes(out),
                **measured,
            }
        )
        print(json.dumps(runs[-1]), flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    nodes = [r["num_nodes"] for r in runs]
    projection = None
    if len(runs) >= 2:
        projection = {
            key: _fit(nodes, [r[key] for r in runs], PAPERS100M_NODES)
            for key in (
                "seconds",
                "peak_anon_bytes",
                "peak_rss_bytes",
                "input_bytes",
                "output_bytes",
            )
        }
    extra = {
        "projection": projection,
        "papers100M": {"num_nodes": PAPERS100M_NODES, "num_edges": PAPERS100M_EDGES},
    }
    _, md_path = write_report(
        args.out / OUTPUT,
        runs,
        COLUMNS,
        "Converting OGB binary folders (papers100M layout)",
        command,
        info,
        notes(projection),
        extra,
    )
    print(md_path.read_text())
    result = {"command": command, "runs": runs, **extra}
    return result


if __name__ == "__main__":
    main()
