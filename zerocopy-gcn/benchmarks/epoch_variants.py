"""End-to-end epoch times per fetch variant: a Hydra multirun of train.py, summarised.

    python benchmarks/epoch_variants.py        (part of make bench; -> benchmarks/epoch_variants/)
    python benchmarks/epoch_variants.py --summarise outputs/bench_epochs/<graph folder> ...

Each variant is a config in ``configs/bench_variant/``; the default set is this machine's (the
CPU variants without CUDA, the GPU ones with it), and a variant whose fetch mode needs what the
machine lacks is listed as skipped with the reason.  The variants that share a graph folder run
as one multirun,

    python train.py -m +experiment=bench_epochs +bench_variant=conventional,conventional-prefetch \\
        data=folder data.path=<generated folder> data.validate=none \\
        +hydra.callbacks.page_cache._target_=pagecache.EvictGraphFiles ...

with the graph's files evicted from the page cache before every job (``pagecache.py``).  "Cold"
is defined the same way for every mode: the job's set-up (graph maps, samplers, the fetcher:
pinning and registering the table for zero-copy, a GPU copy for all-in-GPU) plus its first
epoch, both started from the evicted page cache.  The set-up is timed on its own too: zero-copy's
``cudaHostRegister`` reads the whole table from disk during set-up, so its first epoch alone is
not cold, where the conventional path reads the table during its first epoch.  The later epochs
are the warm ones.  The summary reads each
job's ``metrics.json`` (and the variant from its ``.hydra/hydra.yaml``) and writes
``epoch_variants.{json,md}`` and ``epoch_times.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from trilab.bench import Column, add_ratio, command_line, load_script, machine, write_report

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CPU_VARIANTS = (
    "conventional",
    "conventional-prefetch",
    "conventional-reference-sampler",
    "conventional-fp16",
    "conventional-bf16",
)
GPU_VARIANTS = (
    "conventional",
    "conventional-prefetch",
    "gpu",
    "gpu-prefetch",
    "zerocopy",
    "zerocopy-prefetch",
    "zerocopy-cache",
    "zerocopy-cache-prefetch",
)
DEFAULT_GRAPHS = ("reddit_like:20000:50", "products_like:60000:25")
TIMES = ("epoch_s", "sample_s", "fetch_s", "train_s", "stall_s")
CALLBACK = "+hydra.callbacks.page_cache._target_=pagecache.EvictGraphFiles"

COLUMNS = [
    Column("graph", "graph"),
    Column("nodes", "num_nodes"),
    Column("edges", "num_edges"),
    Column("feat", value=lambda r: f"{r['feat_dim']} {r['feat_dtype']}"),
    Column("variant", "variant"),
    Column("warm epoch s", "epoch_s", "{:.2f}"),
    Column("sample s", "sample_s", "{:.2f}"),
    Column("fetch s", "fetch_s", "{:.2f}"),
    Column("train s", "train_s", "{:.2f}"),
    Column("stall s", "stall_s", "{:.2f}"),
    Column("set-up s", value=lambda r: r["cold"]["setup_s"], fmt="{:.2f}", missing="-"),
    Column("cold epoch s", value=lambda r: r["cold"]["epoch_s"], fmt="{:.2f}"),
    Column(
        "cold set-up + epoch s", value=lambda r: r["cold"]["total_s"], fmt="{:.2f}", missing="-"
    ),
    Column("cold fetch s", value=lambda r: r["cold"]["fetch_s"], fmt="{:.2f}"),
    Column("cold feat resident", "cold_feat_resident_fraction", "{:.0%}", missing="-"),
    Column("speedup vs conventional", "speedup_vs_conventional", "{:.2f}", missing="-"),
    Column("val acc", "val_acc", "{:.3f}"),
]


def compose(variant: str, overrides: Sequence[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            return hydra_compose(
                "config",
                overrides=["+experiment=bench_epochs", f"+bench_variant={variant}", *overrides],
            )
    finally:
        GlobalHydra.instance().clear()


def missing_for(cfg, cuda: bool, cupy: bool) -> str | None:
    """Why this machine cannot run the composed variant (None: it can)."""
    wants_cuda = (
        cfg.fetch.mode in ("gpu", "zerocopy")
        or cfg.sample_on == "mapped"
        or str(cfg.device).startswith("cuda")
    )
    if wants_cuda and not cuda:
        return "no CUDA device"
    if cfg.fetch.mode == "zerocopy" and not cupy:
        return "CuPy not installed"
    return None


def multirun_command(
    variants: Sequence[str], folder: Path, sweep_dir: Path, overrides: Sequence[str]
) -> list[str]:
    """The multirun over ``variants`` on the generated ``folder``; ``data.*`` overrides made
    the folder and are left out (the folder config has no such keys)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith("data.")]
    return [
        "python",
        "train.py",
        "-m",
        "+experiment=bench_epochs",
        "+bench_variant=" + ",".join(variants),
        "data=folder",
        f"data.path={folder}",
        "data.validate=none",
        f"hydra.sweep.dir={sweep_dir}",
        CALLBACK,
        *kept,
    ]


def run_multirun(command: list[str]) -> None:
    sweep_dir = Path(next(a for a in command if a.startswith("hydra.sweep.dir=")).split("=", 1)[1])
    if (sweep_dir / "multirun.yaml").is_file():
        shutil.rmtree(sweep_dir)  # this script's own earlier sweep; jobs refuse a used folder
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise SystemExit(
            f"{sweep_dir} exists and is not a sweep of this benchmark; choose another --sweep-dir"
        )
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    print("$ " + shlex.join(command), flush=True)
    subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, check=True)


def job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p.parent for p in Path(sweep_dir).glob("*/metrics.json")]
    return sorted(jobs, key=lambda p: (len(p.name), p.name))


def cold_times(setup_s: float | None, first: dict[str, Any]) -> dict[str, Any]:
    """The cold figures of one job: its first epoch's times, the set-up before it, and the two
    together (the one cold figure that means the same for every fetch mode)."""
    cold = {key: first[key] for key in TIMES}
    cold["setup_s"] = setup_s
    cold["total_s"] = None if setup_s is None else setup_s + first["epoch_s"]
    return cold


def summarise_job(job: Path) -> dict[str, Any]:
    import json

    metrics = json.loads((job / "metrics.json").read_text())
    hydra_cfg = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
    config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    page_cache = job / "page_cache.json"
    cache = json.loads(page_cache.read_text()) if page_cache.is_file() else {}
    history = metrics["history"]
    first, warm = history[0], history[1:] or history
    row = {
        "graph": metrics["graph"]["name"],
        "num_nodes": metrics["graph"]["num_nodes"],
        "num_edges": metrics["graph"]["num_edges"],
        "feat_dim": metrics["graph"]["feat_dim"],
        "feat_dtype": metrics["graph"]["feat_dtype"],
        "variant": hydra_cfg["runtime"]["choices"].get("bench_variant", "-"),
        "fetch": metrics["fetch_mode"],
        "device": metrics["device"],
        "overrides": hydra_cfg["overrides"]["task"],
        "epochs": metrics["epochs"],
        "max_batches": config.get("max_batches"),
        **{key: float(np.mean([h[key] for h in warm])) for key in TIMES},
        "cold": cold_times(metrics.get("setup_s"), first),
        "cold_feat_resident_fraction": cache.get("feat_resident_fraction"),
        "page_cache_evicted": bool(cache.get("evicted")),
        "val_acc": metrics["final_val_acc"],
        "run_dir": str(job),
    }
    for key in ("cache_hit_rate", "pcie_gb"):
        if key in first:
            row[key] = float(np.mean([h[key] for h in warm]))
    return row


def summarise(sweep_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    rows = [summarise_job(job) for sweep in sweep_dirs for job in job_dirs(sweep)]
    group = ("graph", "num_nodes")
    add_ratio(rows, "epoch_s", "conventional", "variant", "speedup_vs_conventional", group)
    add_ratio(rows, "epoch_s", "gpu", "variant", "fraction_of_all_in_gpu", group)
    return rows


def plot(out: Path, rows: list[dict[str, Any]]) -> Path | None:
    """Stacked sample/fetch/train bars with the warm and cold epoch times (matplotlib optional)."""
    try:
        import matplotlib
    except ImportError:
        return None
    if not rows:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    labels = [f"{r['graph']} | {r['variant']}" for r in rows]
    bottoms = np.zeros(len(rows))
    for key in ("sample_s", "fetch_s", "train_s"):
        values = np.array([r[key] for r in rows])
        ax.bar(labels, values, bottom=bottoms, label=key.replace("_s", ""))
        bottoms += values
    ax.plot(labels, [r["epoch_s"] for r in rows], "k*", label="warm epoch wall time")
    ax.plot(labels, [r["cold"]["epoch_s"] for r in rows], "rx", label="first epoch")
    totals = [r["cold"]["total_s"] for r in rows]
    if all(t is not None for t in totals):
        ax.plot(labels, totals, "r^", label="cold: set-up + first epoch")
    ax.set_ylabel("seconds per epoch")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=7, labelrotation=35)
    plt.setp(ax.get_xticklabels(), ha="right")
    fig.tight_layout()
    path = out / "epoch_times.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def notes_for(rows: list[dict[str, Any]], skipped: list[str], multiruns: list[str]) -> list[str]:
    first = rows[0] if rows else {}
    batches = (
        f"{first['max_batches']} minibatches per epoch"
        if first.get("max_batches")
        else "whole epochs"
    )
    notes = [
        f"{batches}; warm = mean over the epochs after the first; cold = set-up + first "
        "epoch, started with the graph's files evicted from the page cache, the same for every "
        "mode (zero-copy pins and so reads the whole table during set-up, the conventional "
        "path during its first epoch: compare cold set-up + epoch across modes, not the first "
        "epoch alone); cold feat resident: the share of the feature file still cached after "
        "eviction."
    ]
    if skipped:
        notes.append("**Not runnable on this machine:** " + "; ".join(skipped) + ".")
    notes += ["Multirun: `" + m + "`" for m in multiruns]
    return notes


def training_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    if args.max_batches is not None:
        overrides.append(f"max_batches={args.max_batches}")
    if args.fanouts:
        overrides.append("fanouts=[" + ",".join(map(str, args.fanouts)) + "]")
    if args.split:
        overrides.append("data.split=[" + ",".join(map(str, args.split)) + "]")
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root.resolve()}")
    return overrides + list(args.override)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    graphs = load_script(HERE / "bench_graphs.py")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().with_suffix(""))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="configs/bench_variant/ names (default: this machine's set)",
    )
    parser.add_argument(
        "--graph",
        action="append",
        default=None,
        help="PRESET:NODES:AVG_DEGREE, repeatable (default: " + " and ".join(DEFAULT_GRAPHS) + ")",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the experiment's 3")
    parser.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="minibatches per epoch (default: the whole training split)",
    )
    parser.add_argument("--fanouts", type=int, nargs="+", default=None)
    parser.add_argument(
        "--split", type=float, nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST")
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where graphs are generated (default: the experiment's data/bench)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="training override for every variant, e.g. sample_on=device",
    )
    parser.add_argument("--sweep-dir", type=Path, default=Path(ROOT / "outputs" / "bench_epochs"))
    parser.add_argument(
        "--summarise",
        type=Path,
        nargs="+",
        default=None,
        metavar="SWEEP_DIR",
        help="only summarise multiruns already run",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.graph = args.graph or ["products_like:2000:10"]
        args.epochs = args.epochs or 2
        args.fanouts = args.fanouts or [5, 5]
        args.variants = args.variants or ["conventional", "conventional-prefetch"]
    info = machine()
    skipped: list[str] = []
    multiruns: list[str] = []
    if args.summarise:
        sweeps = list(args.summarise)
    else:
        import torch

        cuda = torch.cuda.is_available()
        cupy = importlib.util.find_spec("cupy") is not None
        known = sorted(p.stem for p in (ROOT / "configs" / "bench_variant").glob("*.yaml"))
        default = list(GPU_VARIANTS if cuda else CPU_VARIANTS)
        names = args.variants or default
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown variants {unknown}; configs/bench_variant/ has {known}")
        if not args.variants and not cuda:
            skipped += [f"epoch {n}: no CUDA device" for n in GPU_VARIANTS if n not in names]
        base = training_overrides(args)
        sweeps = []
        for text in args.graph or DEFAULT_GRAPHS:
            graph = graphs.graph_arg(text)
            graph_overrides = [
                f"data.preset={graph['preset']}",
                f"data.num_nodes={graph['num_nodes']}",
                f"data.avg_degree={graph['avg_degree']}",
                *base,
            ]
            folders: dict[Path, list[str]] = {}
            for name in names:
                cfg = compose(name, graph_overrides)
                reason = missing_for(cfg, cuda, cupy)
                if reason:
                    skipped.append(f"epoch {name}: {reason}")
                    continue
                data = OmegaConf.to_container(cfg.data, resolve=True)
                root = Path(data["root"])
                root = root if root.is_absolute() else ROOT / root
                folders.setdefault(graphs.graph_folder(root, data), []).append(name)
            for folder, variants in folders.items():
                sweep = args.sweep_dir.resolve() / folder.name
                command = multirun_command(variants, folder, sweep, graph_overrides)
                run_multirun(command)
                multiruns.append(shlex.join(command))
                sweeps.append(sweep)
        skipped = sorted(set(skipped))
    rows = summarise(sweeps)
    args.out.mkdir(parents=True, exist_ok=True)
    _, md_path = write_report(
        args.out / "epoch_variants",
        rows,
        COLUMNS,
        "zerocopy-gcn epochs per fetch variant",
        command_line(argv, __file__),
        info,
        notes_for(rows, skipped, multiruns),
        {"skipped": skipped, "multiruns": multiruns, "sweeps": [str(s) for s in sweeps]},
    )
    figure = plot(args.out, rows)
    print(md_path.read_text())
    print(f"written: {md_path}" + (f", {figure}" if figure else ""))
    return {
        "rows": rows,
        "skipped": skipped,
        "multiruns": multiruns,
        "sweeps": [str(s) for s in sweeps],
    }


if __name__ == "__main__":
    main()
