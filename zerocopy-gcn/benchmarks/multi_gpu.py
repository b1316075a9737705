"""Epoch time with one GPU and with all of them (torchrun, one process per GPU).

    python benchmarks/multi_gpu.py --out benchmarks/multi_gpu [--graph products_like:60000:25]

Zero-copy where CuPy is present, else the conventional path.  Writes ``multi_gpu.{json,md}``;
with fewer than two GPUs the report has no rows and says why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from trilab.bench import Column, command_line, load_script, machine, write_report

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [
    Column("GPUs", "gpus"),
    Column("fetch", "fetch"),
    Column("epoch s", "epoch_s", "{:.2f}"),
    Column("val acc", "val_acc", "{:.3f}"),
]


def bench_multi_gpu(
    data: dict, data_root: Path, epochs: int, fanouts: list[int]
) -> tuple[list[dict[str, Any]], list[str]]:
    gpus = torch.cuda.device_count()
    if gpus < 2:
        return [], [f"multi-GPU scaling: {gpus} GPU(s) on this machine"]
    try:
        import cupy  # noqa: F401

        mode = "zerocopy"
    except ImportError:
        mode = "conventional"
    rows = []
    for procs in sorted({1, gpus}):
        with tempfile.TemporaryDirectory() as run:
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={procs}",
                str(ROOT / "train.py"),
                f"data={data['preset']}",
                f"data.num_nodes={data['num_nodes']}",
                f"data.avg_degree={data['avg_degree']}",
                f"data.root={data_root.resolve()}",
                f"epochs={epochs}",
                "fanouts=[" + ",".join(map(str, fanouts)) + "]",
                f"fetch={mode}",
                "device=cuda",
                "tensorboard=false",
                f"hydra.run.dir={run}",
            ]
            subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            metrics = json.loads((Path(run) / "metrics.json").read_text())
        rows.append(
            {
                "gpus": procs,
                "fetch": mode,
                **metrics["mean_epoch_times_excluding_first"],
                "val_acc": metrics["final_val_acc"],
            }
        )
    return rows, []


def main(argv: list[str] | None = None) -> dict[str, Any]:
    graphs = load_script(Path(__file__).with_name("bench_graphs.py"))
    parser = graphs.graph_parser(__doc__, __file__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.graph = args.graph or {"preset": "products_like", "num_nodes": 2_000, "avg_degree": 10}
        args.epochs, args.fanouts = 2, [5, 5]
    data = args.graph or {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25}
    info = machine()
    rows, skipped = bench_multi_gpu(data, args.data_root, args.epochs, args.fanouts)
    notes = ["Mean epoch time after the first epoch; one process per GPU."]
    if skipped:
        notes.append("**Not runnable on this machine:** " + "; ".join(skipped) + ".")
    _, md_path = write_report(
        args.out / "multi_gpu",
        rows,
        COLUMNS,
        "zerocopy-gcn GPUs",
        command_line(argv, __file__),
        info,
        notes,
        {"skipped": skipped},
    )
    print(md_path.read_text())
    return {"rows": rows, "skipped": skipped}


if __name__ == "__main__":
    main()
