"""Hit rate and PCIe traffic per epoch of the hot-row cache for several budgets and rankings.

    python benchmarks/cache_hit_rate.py [--graph products_like:60000:25]

Counted from the sampler's real input nodes over the first ``--batches`` minibatches of epoch 0
and extrapolated to a whole epoch; independent of the device.  Writes
``cache_hit_rate.{json,md}`` into ``--out`` (default: ``benchmarks/cache_hit_rate/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trilab.bench import Column, command_line, load_script, machine, write_report
from zerocopy_gcn.cache import hotness_order
from zerocopy_gcn.graph import load_graph
from zerocopy_gcn.sampling import NeighborSampler, seed_batches

COLUMNS = [
    Column("graph", "graph"),
    Column("ranking", "ranking"),
    Column("cache fraction", "cache_fraction", "{:.0%}"),
    Column("hit rate", "hit_rate", "{:.1%}"),
    Column("PCIe GB/epoch", "pcie_gb_per_epoch", "{:.3f}"),
    Column("saved GB/epoch", "pcie_gb_saved_per_epoch", "{:.3f}"),
]


def bench_cache(
    graph_dir: Path,
    fanouts: list[int],
    batch_size: int,
    max_batches: int,
    fractions: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5),
) -> list[dict[str, Any]]:
    graph = load_graph(graph_dir, validate="none")
    sampler = NeighborSampler(graph, fanouts, seed=0)
    batches = seed_batches(graph.splits["train"], batch_size, 0, 0)
    inputs = [
        sampler.sample(seeds, step=i).input_nodes.numpy()
        for i, seeds in enumerate(batches[:max_batches])
    ]
    scale = len(batches) / len(inputs)  # extrapolate the measured batches to a whole epoch
    requested = sum(x.shape[0] for x in inputs)
    row_bytes = graph.feat_dim * graph.feat.dtype.itemsize
    rows = []
    for ranking in ("degree", "reverse_pagerank"):
        seeds = np.asarray(graph.splits["train"]) if ranking == "reverse_pagerank" else None
        order = hotness_order(np.asarray(graph.indptr), np.asarray(graph.indices), ranking, seeds)
        position = np.empty(graph.num_nodes, dtype=np.int64)
        position[order] = np.arange(graph.num_nodes)
        for fraction in fractions:
            cached = int(round(fraction * graph.num_nodes))
            hits = sum(int((position[x] < cached).sum()) for x in inputs)
            rows.append(
                {
                    "graph": graph.name,
                    "ranking": ranking,
                    "cache_fraction": fraction,
                    "hit_rate": hits / requested,
                    "pcie_gb_per_epoch": (requested - hits) * row_bytes * scale / 1e9,
                    "pcie_gb_saved_per_epoch": hits * row_bytes * scale / 1e9,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    graphs = load_script(Path(__file__).with_name("bench_graphs.py"))
    parser = graphs.graph_parser(__doc__, __file__)
    parser.add_argument("--fanouts", type=int, nargs="+", default=None)
    parser.add_argument("--batches", type=int, default=20, help="minibatches of 1000 seeds")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches = 3
        args.graph = args.graph or {"preset": "products_like", "num_nodes": 2_000, "avg_degree": 10}
    data = args.graph or {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25}
    fanouts = args.fanouts or ([5, 5] if args.quick else [15, 10, 5])
    info = machine()
    rows = bench_cache(graphs.graph_folder(args.data_root, data), fanouts, 1000, args.batches)
    notes = [
        f"Fanouts {fanouts}, {args.batches} minibatches of 1000 seeds, extrapolated to an "
        "epoch; the cache holds the given fraction of rows, hottest first by the ranking."
    ]
    _, md_path = write_report(
        args.out / "cache_hit_rate",
        rows,
        COLUMNS,
        "zerocopy-gcn hot-row cache",
        command_line(argv, __file__),
        info,
        notes,
    )
    print(md_path.read_text())
    return rows


if __name__ == "__main__":
    main()
