"""Sampled edges per second of the CPU samplers, alone and beside other work on the CPU.

    python benchmarks/sampler_rates.py --graph products_like:2000000:26 --threads 2 1 \
        --loads idle busy training --out benchmarks/sampler      (make bench-sampler)

Writes ``sampler_rates.{json,md}``.  Every run samples the same minibatches
(the first ``batches`` of epoch 0's shuffled training seeds, steps 0, 1, ...); runs are
interleaved, every repeat taking each (sampler, threads) in turn under each load, and the
median over repeats is reported.  Loads:

- ``idle``: nothing added (other processes on the machine are recorded, not controlled: the
  1-minute load average before each run is in the JSON);
- ``busy``: a child process spinning on one CPU of this process's affinity mask for the
  duration of the runs, killed after them (it also stops itself after ``BUSY_LIMIT_S``);
- ``training``: a thread of this process multiplying matrices with torch's intra-op threads
  while the sampler runs, as training does beside the prefetch thread (``prefetch=true``).

A run is time-boxed: it stops after the batch that passes ``seconds_per_run``, so a sampler
that collapses under load still finishes; the rate is over the batches it completed.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilab.bench import Column, command_line, load_script, machine, write_report
from zerocopy_gcn.graph import CSRGraph, load_graph
from zerocopy_gcn.sampling import (
    NeighborSampler,
    compiled_sampler_available,
    default_num_threads,
    make_sampler,
    seed_batches,
)

SAMPLER_LOADS = ("idle", "busy", "training")
BUSY_LIMIT_S = 900
_SPIN = (
    "import os, sys, time\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "deadline = time.monotonic() + float(sys.argv[2])\n"
    "print('spinning', flush=True)\n"
    "while time.monotonic() < deadline:\n"
    "    pass\n"
)


@contextlib.contextmanager
def cpu_load(kind: str) -> Iterator[int | None]:
    """Run the body beside the load ``kind`` (see the module docstring); the load always ends
    with the body.  Yields the spinning child's pid for ``busy``."""
    if kind == "idle":
        yield None
        return
    if kind == "busy":
        cpu = max(os.sched_getaffinity(0))
        child = subprocess.Popen(
            [sys.executable, "-c", _SPIN, str(cpu), str(BUSY_LIMIT_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            child.stdout.readline()  # spinning from here on
            yield child.pid
        finally:
            child.kill()
            child.wait()
        return
    if kind == "training":
        stop = threading.Event()

        def multiply() -> None:
            a = torch.randn(1024, 1024)
            b = torch.randn(1024, 1024)
            while not stop.is_set():
                torch.mm(a, b)

        worker = threading.Thread(target=multiply, name="training-load", daemon=True)
        worker.start()
        try:
            yield None
        finally:
            stop.set()
            worker.join()
        return
    raise ValueError(f"unknown load {kind!r}; choose from {SAMPLER_LOADS}")


def _touch(array: np.ndarray) -> int:
    """Read an array once (chunked) so that a memory map's pages are mapped before timing: the
    peers' figures are for a graph already in memory."""
    total = 0
    for start in range(0, array.shape[0], 1 << 24):
        total += int(array[start : start + (1 << 24)][::512].sum())  # one read per 2-4 KB page
    return total


def _one_run(sampler, batches: list[torch.Tensor], seconds_per_run: float) -> dict[str, Any]:
    load_avg = os.getloadavg()[0]
    edges = done = 0
    start = time.perf_counter()
    for step, seeds in enumerate(batches):
        batch = sampler.sample(seeds, epoch=0, step=step)
        edges += sum(int(b.edge_index.shape[1]) for b in batch.blocks)
        done += 1
        if time.perf_counter() - start > seconds_per_run:
            break
    seconds = time.perf_counter() - start
    return {
        "batches": done,
        "sampled_edges": edges,
        "seconds": seconds,
        "edges_per_s": edges / seconds,
        "load_avg_1min_before": load_avg,
    }


def bench_cpu_samplers(
    graph: CSRGraph,
    fanouts: list[int],
    batch_size: int,
    batches: int,
    threads: list[int],
    loads: list[str],
    repeats: int,
    seconds_per_run: float,
    kinds: tuple[str, ...] = ("compiled", "reference"),
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (sampler, threads, load): median edges/s over ``repeats`` interleaved runs,
    every run kept under ``runs``; and the skipped variants with reasons."""
    skipped = []
    if "compiled" in kinds and not compiled_sampler_available():
        kinds = tuple(k for k in kinds if k != "compiled")
        skipped.append("sampler compiled: numba not installed")
    seeds = seed_batches(graph.splits["train"], batch_size, 0, 0)[:batches]
    _touch(np.asarray(graph.indptr))
    _touch(np.asarray(graph.indices))
    torch_threads = torch.get_num_threads()
    samplers = {}
    for kind in kinds:
        for count in threads:
            sampler = make_sampler(kind, graph, fanouts, seed=0, num_threads=count)
            torch.set_num_threads(count)
            sampler.sample(seeds[0], epoch=0, step=0)  # warm-up: compilation, first pages
            samplers[(kind, count)] = sampler
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    try:
        for _ in range(repeats):
            for load in loads:
                with cpu_load(load):
                    for (kind, count), sampler in samplers.items():
                        # the reference's threads are torch's intra-op pool
                        torch.set_num_threads(count)
                        runs.setdefault((kind, count, load), []).append(
                            _one_run(sampler, seeds, seconds_per_run)
                        )
    finally:
        torch.set_num_threads(torch_threads)
        for sampler in samplers.values():
            if hasattr(sampler, "close"):
                sampler.close()
    rows = []
    for (kind, count, load), measured in runs.items():
        rates = [r["edges_per_s"] for r in measured]
        rows.append(
            {
                "device": "cpu",
                "sampler": kind,
                "threads": count,
                "load": load,
                "graph": graph.name,
                "num_nodes": graph.num_nodes,
                "num_edges": graph.num_edges,
                "fanouts": fanouts,
                "batch_size": batch_size,
                "batches": batches,
                "edges_per_s": statistics.median(rates),
                "min_edges_per_s": min(rates),
                "max_edges_per_s": max(rates),
                "runs": measured,
            }
        )
    for row in rows:
        reference = [
            r
            for r in rows
            if r["sampler"] == "reference"
            and (r["threads"], r["load"]) == (row["threads"], row["load"])
        ]
        if reference:
            row["speedup_vs_reference"] = row["edges_per_s"] / reference[0]["edges_per_s"]
    return rows, skipped


def bench_gpu_sampler(
    graph: CSRGraph, fanouts: list[int], batch_size: int, batches: int
) -> list[dict[str, Any]]:
    """The reference's tensor code on the GPU (CSR copied to device memory), where present."""
    if not torch.cuda.is_available():
        return []
    sampler = NeighborSampler(graph, fanouts, seed=0, device="cuda")
    seeds = seed_batches(graph.splits["train"], batch_size, 0, 0)[:batches]
    sampler.sample(seeds[0])
    torch.cuda.synchronize()
    start = time.perf_counter()
    edges = 0
    for step, batch_seeds in enumerate(seeds):
        edges += sum(
            int(b.edge_index.shape[1]) for b in sampler.sample(batch_seeds, step=step).blocks
        )
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return [
        {
            "device": "cuda",
            "sampler": "reference",
            "threads": None,
            "load": "idle",
            "graph": graph.name,
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "fanouts": fanouts,
            "batch_size": batch_size,
            "batches": len(seeds),
            "sampled_edges": edges,
            "seconds": seconds,
            "edges_per_s": edges / seconds,
        }
    ]


def _spread(r: dict[str, Any]) -> str | None:
    if "min_edges_per_s" not in r:
        return None
    return f"{r['min_edges_per_s'] / 1e6:.2f} - {r['max_edges_per_s'] / 1e6:.2f} M"


def _load_avg(r: dict[str, Any]) -> str | None:
    values = [run["load_avg_1min_before"] for run in r.get("runs", [])]
    return f"{min(values):.2f} - {max(values):.2f}" if values else None


COLUMNS = [
    Column("sampler", "sampler"),
    Column("device", "device"),
    Column("threads", "threads", missing="-"),
    Column("load", "load"),
    Column("sampled edges/s", "edges_per_s", lambda v: f"{v / 1e6:.2f} M"),
    Column("min - max", value=_spread, missing="-"),
    Column("runs", value=lambda r: len(r.get("runs", [])) or 1),
    Column("vs reference", "speedup_vs_reference", "{:.1f}x", missing="-"),
    Column("machine load avg", value=_load_avg, missing="-"),
]
LOADS_NOTE = (
    "Loads: idle = nothing added; busy = a child process spinning on one CPU for the "
    "runs; training = torch matrix products in a thread of the same process (as beside "
    "the prefetch thread). Machine load avg: the 1-minute load average before each run "
    "(other jobs on the machine are not controlled; 'idle' means nothing added by the "
    "benchmark)."
)


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows,
        key=lambda r: (
            r["device"],
            r["load"] != "idle",
            r["load"],
            -(r["threads"] or 0),
            r["sampler"],
        ),
    )


def heading(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No sampler ran."
    first = rows[0]
    return (
        f"{first['graph']}, {first['num_nodes']:,} nodes, {first['num_edges']:,} edges; "
        f"fanouts {first['fanouts']} from the seeds out; {first['batches']} batches of "
        f"{first['batch_size']} seeds per run; median of interleaved runs."
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    graphs = load_script(Path(__file__).with_name("bench_graphs.py"))
    parser = graphs.graph_parser(__doc__)
    parser.add_argument("--fanouts", type=int, nargs="+", default=None)
    parser.add_argument("--batches", type=int, default=20, help="minibatches of 1000 seeds per run")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="thread counts of the CPU samplers (default: this process's CPUs)",
    )
    parser.add_argument(
        "--loads",
        nargs="+",
        choices=SAMPLER_LOADS,
        default=["idle", "busy"],
        help="what else runs on the CPU meanwhile",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="interleaved runs per sampler, threads and load (median reported)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="a run stops after the batch that passes this many seconds",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.repeats = 3, 1
        args.graph = args.graph or {"preset": "products_like", "num_nodes": 2_000, "avg_degree": 10}
    data = args.graph or {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25}
    fanouts = args.fanouts or ([5, 5] if args.quick else [15, 10, 5])
    info = machine()
    graph = load_graph(graphs.graph_folder(args.data_root, data), validate="none")
    threads = args.threads or [default_num_threads()]
    rows, skipped = bench_cpu_samplers(
        graph, fanouts, 1000, args.batches, threads, args.loads, args.repeats, args.seconds
    )
    rows = ordered(rows + bench_gpu_sampler(graph, fanouts, 1000, args.batches))
    if not torch.cuda.is_available():
        skipped.append("sampler reference on the GPU: no CUDA device")
    notes = [heading(rows), LOADS_NOTE]
    if skipped:
        notes.append("**Not runnable on this machine:** " + "; ".join(skipped) + ".")
    _, md_path = write_report(
        args.out / "sampler_rates",
        rows,
        COLUMNS,
        "zerocopy-gcn neighbour sampler",
        command_line(argv, __file__),
        info,
        notes,
        {"skipped": skipped},
    )
    print(md_path.read_text())
    return {"rows": rows, "skipped": skipped}


if __name__ == "__main__":
    main()
