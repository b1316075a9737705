"""Epoch time through PyG's NodeLoader against train.py's own loop, on one graph (issue 29).

    python benchmarks/pyg_loader.py --graph products_like:100000:25 --repeats 5 --epochs 4

Writes ``pyg_loader.{json,md}`` into ``--out`` (default ``benchmarks/pyg_loader/``).  Every path
trains on the same graph folder with the same fetch mode, fanouts, batch size, learning rate and
sampler (``sampler.kind=auto``: the compiled sampler on the CPU), without prefetching, and the
same model: GraphSAGE of the same depth and width, built from PyG's ``SAGEConv``:

- ``train.py``: :func:`zerocopy_gcn.training.train`, its ``epoch_s`` per epoch (the wall time of
  the epoch's steps: sampling, fetching, forward and backward; not set-up, evaluation or the
  checkpoint); its ``sample_s + fetch_s`` is the loader column;
- ``PyG NodeLoader, layers=blocks``: ``NodeLoader((FolderFeatureStore, FolderGraphStore),
  FolderNeighborSampler)`` feeding ``torch_geometric.nn.models.GraphSAGE`` through
  ``examples/pyg_sage.py``'s own ``train_epoch`` and ``forward_blocks``: train.py's computation
  (layer i over hop L-i's edges into that hop's destinations), the path the 10 % target is about;
- ``PyG NodeLoader, layers=trim``: the same with GraphSAGE's own ``trim_to_layer`` forward, which
  computes more rows and edges per layer (counted in the notes);
- ``PyG NodeLoader alone``: the loader iterated without a model (sampling, fetching, PyG's
  filtering into ``Data``), the loader column of the PyG rows.

Runs are interleaved: every round runs each path for ``--epochs`` epochs, set up afresh, the
order reversed every other round, so load from other processes falls on all alike; each run's
first epoch (compilation, first allocations) is left out and the table gives the median over
rounds and the ratio.  PyG's own ``NeighborSampler`` is tried on the same stores and its row
says why it cannot run where it cannot (it needs pyg-lib or torch-sparse).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trilab.bench import Column, Timing, command_line, load_script, machine, write_report
from trilab.testing import compose_config
from zerocopy_gcn.pyg import FolderFeatureStore, FolderGraphStore, FolderNeighborSampler

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLE = load_script(PROJECT / "examples" / "pyg_sage.py")
TARGET_OVERHEAD = 0.10  # issue 29: the PyG path costs at most 10 % more per epoch


def train_py_epochs(folder: Path, settings: dict[str, Any], epochs: int) -> list[dict[str, float]]:
    """A ``train.py`` run of ``epochs`` epochs on ``folder``: each epoch's ``epoch_s`` and its
    loader share, ``sample_s + fetch_s``."""
    from zerocopy_gcn.training import train

    overrides = [
        "data=folder",
        f"data.path={folder}",
        "data.validate=cheap",
        f"fetch={settings['fetch']}",
        f"device={settings['device']}",
        f"fanouts=[{','.join(map(str, settings['fanouts']))}]",
        f"batch_size={settings['batch_size']}",
        f"eval_batch_size={settings['batch_size']}",
        f"model.hidden={settings['hidden']}",
        f"lr={settings['lr']}",
        f"epochs={epochs}",
        "prefetch=false",
        "tensorboard=false",
    ]
    cfg = compose_config(PROJECT / "configs", overrides)
    with (
        tempfile.TemporaryDirectory(prefix="pyg_loader_train_py_") as run,
        contextlib.chdir(run),
    ):
        metrics = train(cfg)
    return [
        {"epoch_s": float(r["epoch_s"]), "loader_s": float(r["sample_s"]) + float(r["fetch_s"])}
        for r in metrics["history"]
    ]


class PygPath:
    """PyG's NodeLoader over the folder stores, set up as ``examples/pyg_sage.py`` sets it up;
    ``layers``: the example's forward (``blocks`` or ``trim``), or None to iterate the loader
    alone."""

    def __init__(self, folder: Path, settings: dict[str, Any], layers: str | None) -> None:
        from torch_geometric.nn.models import GraphSAGE

        self.device = torch.device(settings["device"])
        self.feature_store = FolderFeatureStore(folder, fetch=settings["fetch"], device=self.device)
        self.graph_store = FolderGraphStore(folder)
        stores = (self.feature_store, self.graph_store)
        self.sampler = FolderNeighborSampler(stores, settings["fanouts"], seed=0)
        train_nodes = self.feature_store.get_idx_split()["train"]
        self.loader = EXAMPLE.loader_for(
            stores, self.sampler, train_nodes, settings["batch_size"], True
        )
        self.forward = None if layers is None else EXAMPLE.FORWARDS[layers]
        self.model = GraphSAGE(
            self.feature_store.get_tensor_size(None, "x")[1],
            settings["hidden"],
            num_layers=len(settings["fanouts"]),
            out_channels=self.feature_store.num_classes,
            dropout=0.5,
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings["lr"])

    def epochs(self, epochs: int) -> list[dict[str, float]]:
        return [{"epoch_s": self.epoch(epoch)} for epoch in range(epochs)]

    def epoch(self, epoch: int) -> float:
        self.sampler.set_epoch(epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        if self.forward is None:
            for data in self.loader:
                data.to(self.device)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        else:
            EXAMPLE.train_epoch(self.model, self.loader, self.optimizer, self.forward, self.device)
        return time.perf_counter() - started

    def builtin_sampler_status(self) -> str | None:
        """None where PyG's own NeighborSampler samples these stores, else why it cannot."""
        from torch_geometric.sampler import NeighborSampler, NodeSamplerInput

        try:
            sampler = NeighborSampler(
                (self.feature_store, self.graph_store), num_neighbors=self.sampler.num_neighbors
            )
            sampler.sample_from_nodes(NodeSamplerInput(None, torch.arange(10)))
        except Exception as error:  # noqa: BLE001 - the reason is the result
            return f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return None

    def close(self) -> None:
        self.feature_store.close()


def pyg_epochs(
    folder: Path, settings: dict[str, Any], epochs: int, layers: str | None
) -> tuple[list[dict[str, float]], str | None]:
    """A fresh PyG set-up run for ``epochs`` epochs: each epoch's seconds, and whether PyG's
    own NeighborSampler could have sampled instead."""
    pyg = PygPath(folder, settings, layers)
    try:
        return pyg.epochs(epochs), pyg.builtin_sampler_status()
    finally:
        pyg.close()


def layer_work(folder: Path, settings: dict[str, Any]) -> dict[str, list[int]]:
    """Rows each layer outputs and edges it aggregates for the first training batch, in the
    block model (``train.py``) and in PyG's ``trim_to_layer`` over the same sampled subgraph:
    the work the two models do, counted rather than timed."""
    pyg = PygPath(folder, settings, layers=None)
    try:
        seeds = pyg.loader.input_data.node[: settings["batch_size"]]
        batch = pyg.sampler.sampler.sample(seeds, epoch=0, step=0)
    finally:
        pyg.close()
    hops = batch.blocks[::-1]  # seeds' hop first
    nodes = [int(seeds.shape[0])] + [b.num_src - b.num_dst for b in hops]
    edges = [int(b.edge_ids.shape[0]) for b in hops]
    layers = len(hops)
    return {
        "blocks_rows": [b.num_dst for b in batch.blocks],
        "blocks_edges": [int(b.edge_ids.shape[0]) for b in batch.blocks],
        # trim_to_layer: layer i keeps the nodes and edges of the first `layers - i` hops
        # and computes every kept node's output
        "trim_rows": [sum(nodes[: layers + 1 - i]) for i in range(layers)],
        "trim_edges": [sum(edges[: layers - i]) for i in range(layers)],
    }


TRAIN_PY = "train.py"
BLOCKS = "PyG NodeLoader, layers=blocks"
TRIM = "PyG NodeLoader, layers=trim"
LOADER_ALONE = "PyG NodeLoader alone (no model)"


def measure(
    folder: Path, settings: dict[str, Any], repeats: int, epochs: int
) -> tuple[dict[str, dict[str, Timing]], str | None]:
    """``repeats`` rounds, each a run of ``epochs`` epochs of every path (order reversed every
    other round); every run set up afresh, its first epoch (warm-up) left out.  Per path, the
    timings of each quantity its epochs report (``epoch_s``; train.py also ``loader_s``)."""
    builtin: list[str | None] = [None]

    def pyg(layers: str | None):
        def run(count: int) -> list[dict[str, float]]:
            epochs_run, builtin[0] = pyg_epochs(folder, settings, count, layers)
            return epochs_run

        return run

    paths = {
        TRAIN_PY: lambda count: train_py_epochs(folder, settings, count),
        BLOCKS: pyg("blocks"),
        TRIM: pyg("trim"),
        LOADER_ALONE: pyg(None),
    }
    timings: dict[str, dict[str, Timing]] = {name: {} for name in paths}
    for round_index in range(repeats):
        for name in list(paths)[:: -1 if round_index % 2 else 1]:
            for record in paths[name](epochs)[1:]:
                for key, seconds in record.items():
                    timings[name].setdefault(key, Timing([])).samples.append(seconds)
    return timings, builtin[0]


COLUMNS = [
    Column("path", "path"),
    Column("sampler", "sampler"),
    Column("epoch (median, s)", "epoch_s", "{:.3f}"),
    Column("spread", "spread", "{:.0%}"),
    Column("vs train.py", "vs_train_py", "{:.3f}x"),
    Column("loader (median, s)", "loader_s", "{:.3f}"),
    Column("runs", "runs"),
    Column("note", "note"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    graphs = load_script(Path(__file__).with_name("bench_graphs.py"))
    parser = graphs.graph_parser(__doc__, __file__)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--fetch", default="conventional", help="conventional | zerocopy | gpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs per run (the first one is not timed)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs, args.fanouts, args.hidden, args.batch_size = (
            1,
            2,
            [5, 5],
            32,
            200,
        )
        args.graph = args.graph or {"preset": "products_like", "num_nodes": 2_000, "avg_degree": 10}
    data = args.graph or {"preset": "products_like", "num_nodes": 60_000, "avg_degree": 25}
    folder = graphs.graph_folder(args.data_root, data)
    settings = {
        "fetch": args.fetch,
        "device": args.device,
        "fanouts": args.fanouts,
        "batch_size": args.batch_size,
        "hidden": args.hidden,
        "lr": 0.003,
    }
    info = machine()
    timings, builtin = measure(folder, settings, args.repeats, args.epochs)
    work = layer_work(folder, settings)
    base = timings[TRAIN_PY]["epoch_s"].median
    pyg_loader_s = timings[LOADER_ALONE]["epoch_s"].median
    notes_by_path = {
        TRAIN_PY: "the project's block model (SAGEConv per block); loader: sample_s + fetch_s",
        BLOCKS: "the same model and computation as train.py (examples/pyg_sage.py's default)",
        TRIM: "GraphSAGE's own forward: more rows and edges per layer (notes below)",
        LOADER_ALONE: "sampling, fetching and PyG's filtering into Data, no model",
    }
    rows = []
    for name, timing in timings.items():
        epoch = timing["epoch_s"]
        loader = timing["loader_s"].median if TRAIN_PY == name else pyg_loader_s
        rows.append(
            {
                "path": name,
                "sampler": "compiled" if name == TRAIN_PY else "compiled (FolderNeighborSampler)",
                "epoch_s": epoch.median,
                "spread": epoch.spread,
                "vs_train_py": epoch.median / base,
                "loader_s": loader,
                "runs": len(epoch.samples),
                "samples_s": epoch.samples,
                "note": notes_by_path[name],
            }
        )
    rows.append(
        {
            "path": "PyG NodeLoader",
            "sampler": "PyG NeighborSampler (built-in)",
            "epoch_s": None,
            "spread": None,
            "vs_train_py": None,
            "loader_s": None,
            "runs": 0,
            "note": (
                f"cannot sample here: {builtin}" if builtin else "samples these stores (not timed)"
            ),
        }
    )
    overhead = timings[BLOCKS]["epoch_s"].median / base - 1
    trim_overhead = timings[TRIM]["epoch_s"].median / base - 1
    loader_overhead = pyg_loader_s / timings[TRAIN_PY]["loader_s"].median - 1
    graph_text = f"{data['preset']}:{data['num_nodes']}:{data['avg_degree']:g}"
    notes = [
        f"Graph {graph_text}, fanouts {args.fanouts}, batch {args.batch_size}, GraphSAGE width "
        f"{args.hidden}, fetch={args.fetch} on {args.device}, no prefetch; {args.repeats} "
        f"interleaved rounds of one {args.epochs}-epoch run per path, each set up afresh; the "
        "median over the epochs after each run's first (runs column: epochs timed).",
        f"PyG path overhead, same model (layers=blocks): {overhead:+.1%} per epoch (target: at "
        f"most +{TARGET_OVERHEAD:.0%}): {'met' if overhead <= TARGET_OVERHEAD else 'NOT met'}. "
        f"The loader alone: {pyg_loader_s:.3f} s per epoch against train.py's sampling and "
        f"fetching, {timings[TRAIN_PY]['loader_s'].median:.3f} s ({loader_overhead:+.0%}). "
        f"GraphSAGE's trim_to_layer forward instead: {trim_overhead:+.1%}.",
        "Work per layer on the first batch (input layer first), rows computed / edges "
        f"aggregated: train.py's blocks and layers=blocks {work['blocks_rows']} / "
        f"{work['blocks_edges']}; GraphSAGE with trim_to_layer {work['trim_rows']} / "
        f"{work['trim_edges']}.  A block computes only its destination rows; trim_to_layer "
        "keeps every node of the hops it has not yet dropped, computes all their rows and "
        "aggregates the edges of all those hops.",
    ]
    _, md_path = write_report(
        args.out / "pyg_loader",
        rows,
        COLUMNS,
        "zerocopy-gcn through PyG's NodeLoader vs train.py's loop",
        command_line(argv, __file__),
        info,
        notes,
        {
            "overhead": overhead,
            "trim_overhead": trim_overhead,
            "loader_overhead": loader_overhead,
            "target_overhead": TARGET_OVERHEAD,
            "settings": settings,
            "layer_work": work,
        },
    )
    print(md_path.read_text())
    return {"rows": rows, "overhead": overhead, "trim_overhead": trim_overhead}


if __name__ == "__main__":
    main()
