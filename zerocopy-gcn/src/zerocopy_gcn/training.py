"""Minibatch GNN training with a pluggable feature-fetch mode; the Hydra entry point calls
:func:`train`.

One step: seeds -> neighbour sampling -> feature fetch -> forward/backward.  Each epoch reports
the time spent sampling, fetching and training (synchronised clocks; with prefetch on,
sample/fetch are the producer's own times and ``stall_s`` is what training waited for them).
Resuming, stops, checkpoints and the run folder are trilab's training loop.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from trilab.checkpoint import checkpoint_dir, load_checkpoint
from trilab.distributed import DistContext, init_distributed
from trilab.errors import UserError
from trilab.hydra_utils import run_dir
from trilab.loop import EpochResult, EpochTotals, StepResult, TrainLoop, epoch_order
from trilab.run_folder import RUN_FILES, claim_run_folder
from trilab.runlog import RunLogger
from trilab.seed import seed_everything
from zerocopy_gcn.fetch import FeatureFetcher, make_fetcher
from zerocopy_gcn.graph import CSRGraph, RMatSpec, ensure_rmat, load_graph, preset_spec
from zerocopy_gcn.graph.csr import numpy_to_tensor
from zerocopy_gcn.host_table import HOST_TABLES, share_graph_arrays
from zerocopy_gcn.models import build_model
from zerocopy_gcn.prefetch import Prefetcher, PreparedBatch, prepare_batch
from zerocopy_gcn.sampling import NeighborSampler, make_sampler, seed_batches

FETCH_OPTIONS = {
    "conventional": ("num_threads", "check_bounds"),
    "gpu": ("check_bounds",),
    "zerocopy": ("kernel", "vector_loads", "sort_indices", "check_bounds", "max_threads"),
}


def open_dataset(
    data: DictConfig, ctx: DistContext | None = None, progress: bool = True
) -> CSRGraph:
    """A graph folder (``data.kind=folder``) or a generated preset (cached under ``data.root``)."""
    if data.kind == "folder":
        if not data.path:
            raise UserError("data.kind=folder needs data.path=<graph folder>")
        return load_graph(to_absolute_path(str(data.path)), validate=data.get("validate", "full"))
    if data.kind != "preset":
        raise UserError(f"data.kind must be 'preset' or 'folder', got {data.kind!r}")
    spec = preset_spec(
        data.preset,
        num_nodes=data.get("num_nodes"),
        avg_degree=data.get("avg_degree"),
        feat_dim=data.get("feat_dim"),
        num_classes=data.get("num_classes"),
        feat_dtype=data.get("feat_dtype"),
        split=data.get("split"),
        seed=data.get("seed", 0),
    )
    folder = preset_folder(Path(to_absolute_path(str(data.root))), data.preset, spec)
    is_main = ctx is None or ctx.is_main
    if is_main:
        ensure_rmat(folder, spec, name=data.preset, progress=progress)
    if ctx is not None:
        ctx.barrier()  # other ranks open the folder rank 0 wrote
    return load_graph(folder, validate="cheap" if not is_main else "full")


def preset_folder(root: Path, preset: str, spec: RMatSpec) -> Path:
    """Where a generated preset graph is cached: one folder per distinct spec."""
    return root / (
        f"{preset}_n{spec.num_nodes}_e{spec.num_edges}_d{spec.feat_dim}"
        f"_c{spec.num_classes}_{spec.feat_dtype}_s{spec.seed}"
    )


def build_fetcher(cfg_fetch: DictConfig, graph: CSRGraph, device: torch.device) -> FeatureFetcher:
    mode = cfg_fetch.mode
    options = {key: cfg_fetch[key] for key in FETCH_OPTIONS.get(mode, ()) if key in cfg_fetch}
    if mode == "zerocopy":
        options["read_only"] = not graph.feat.flags.writeable
    fetcher = make_fetcher(mode, graph.feat_tensor(), device, **options)
    cache_fraction = float(cfg_fetch.get("cache_fraction", 0.0) or 0.0)
    if cache_fraction > 0:
        from zerocopy_gcn.fetch.cached import CachedFetcher

        fetcher = CachedFetcher.for_graph(
            graph, fetcher, device, cache_fraction, ranking=cfg_fetch.get("cache_ranking", "degree")
        )
    return fetcher


def sampling_arrays(
    sample_on: str, graph: CSRGraph, device: torch.device
) -> tuple[torch.device, dict[str, torch.Tensor], list]:
    """Where the sampler runs and which CSR tensors it reads.

    ``cpu``: the memory-mapped arrays on the host; ``device``: copies in device memory;
    ``mapped``: the host arrays pinned in place and read by GPU ops over PCIe (GPU sampling
    for a CSR larger than device memory).
    """
    if sample_on == "cpu":
        return torch.device("cpu"), {}, []
    if sample_on == "device":
        return device, {}, []
    if sample_on == "mapped":
        if device.type != "cuda":
            raise UserError("sample_on=mapped needs a CUDA device")
        from zerocopy_gcn.fetch.zerocopy import HostRegistration, mapped_cuda_tensor

        registrations, csr = [], {}
        for name in ("indptr", "indices"):
            array = getattr(graph, name)
            registration = HostRegistration(
                numpy_to_tensor(array), read_only=not array.flags.writeable
            )
            registrations.append(registration)
            csr[name] = mapped_cuda_tensor(registration, device)
        return device, csr, registrations
    raise UserError(f"sample_on must be cpu, device or mapped, got {sample_on!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    sampler: NeighborSampler,
    fetcher: FeatureFetcher,
    nodes: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> float:
    """Accuracy with sampled neighbourhoods (the sampler's fanouts, a fixed seed)."""
    if nodes.shape[0] == 0:
        return float("nan")
    model.eval()
    correct = 0
    for step, seeds in enumerate(seed_batches(nodes, batch_size, 0, 0, shuffle=False)):
        prepared = prepare_batch(
            sampler, fetcher, seeds, epoch=-1, step=step, device=device, sync=False
        )
        logits = model(prepared.features.float(), prepared.batch.blocks)
        correct += int((logits.argmax(1) == prepared.batch.labels).sum())
    return correct / nodes.shape[0]


def weights_digest(model: torch.nn.Module) -> str:
    module = model.module if hasattr(model, "module") else model
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train on the configured graph; the returned metrics are also written to metrics.json."""
    ctx = init_distributed(cfg.device)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    out = run_dir()
    per_rank_files = [path.name for path in out.glob("*_rank[0-9]*")]  # a torchrun run's
    with (
        claim_run_folder(
            out,
            resume=bool(cfg.resume),
            overwrite=bool(cfg.overwrite),
            ctx=ctx,
            run_files=[*RUN_FILES, *per_rank_files],
        ),
        RunLogger(out, enabled=ctx.is_main, tensorboard=cfg.get("tensorboard", True)) as log,
        ctx,
    ):
        return _train(cfg, ctx, out, log)


def _train(cfg: DictConfig, ctx: DistContext, out: Path, log: RunLogger) -> dict[str, Any]:
    device = ctx.device
    if ctx.is_main:
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    setup_start = time.perf_counter()
    host_table = cfg.get("host_table", "mmap")
    if host_table not in HOST_TABLES:  # before opening (or generating) the graph
        raise UserError(f"host_table must be one of {HOST_TABLES}, got {host_table!r}")
    graph = open_dataset(cfg.data, ctx, progress=ctx.is_main)
    shared_memory = None
    if host_table == "shm":
        graph, shared_memory = share_graph_arrays(graph, ctx)
        log.info(
            f"graph arrays: one copy per machine in shared memory "
            f"({sum(a['bytes'] for a in shared_memory.values()) / 2**30:.2f} GiB)"
        )
    fanouts = list(cfg.fanouts)
    sample_device, csr, registrations = sampling_arrays(cfg.get("sample_on", "cpu"), graph, device)
    sampler_cfg = cfg.get("sampler") or {}
    kind, threads = sampler_cfg.get("kind", "auto"), int(sampler_cfg.get("num_threads", 0) or 0)
    sampler = make_sampler(
        kind,
        graph,
        fanouts,
        seed=cfg.seed * 1009 + ctx.rank,
        device=sample_device,
        num_threads=threads,
        **csr,
    )
    eval_sampler = make_sampler(
        kind, graph, fanouts, seed=cfg.seed + 7, device=sample_device, num_threads=threads, **csr
    )
    fetcher = build_fetcher(cfg.fetch, graph, device)
    model = build_model(
        cfg.model.name,
        graph.feat_dim,
        cfg.model.hidden,
        graph.num_classes,
        len(fanouts),
        dropout=cfg.model.dropout,
        heads=cfg.model.get("heads", 4),
    ).to(device)
    trainable = ctx.wrap_model(model)
    optimizer = torch.optim.Adam(trainable.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log.info(
        f"sampler: {type(sampler).__name__} on {sample_device}"
        + (f", {sampler.num_threads} threads" if hasattr(sampler, "num_threads") else "")
    )
    log.info(
        f"graph {graph.name}: {graph.num_nodes} nodes, {graph.num_edges} edges, "
        f"{graph.feat_dim} {graph.feat_dtype} features, {graph.num_classes} classes; "
        f"fetch={cfg.fetch.mode} on {device}, world size {ctx.world_size}"
    )
    setup_s = time.perf_counter() - setup_start
    train_nodes, val_nodes, test_nodes = (
        np.asarray(graph.splits[split]) for split in ("train", "val", "test")
    )
    steps = -(-(train_nodes.shape[0] // ctx.world_size) // cfg.batch_size)
    if cfg.get("max_batches"):
        steps = min(steps, int(cfg.max_batches))
    loop = TrainLoop(
        trainable,
        optimizer,
        checkpoint_dir=checkpoint_dir(out),
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        ctx=ctx,
        log=log,
        resume=bool(cfg.resume),
        extra={"history": []},
    )

    def batches(epoch: int, skip: int) -> Prefetcher:
        """This rank's share of the epoch's training nodes from batch ``skip`` on, each batch
        sampled and its features fetched (the next one while this one trains, with prefetch)."""
        order = epoch_order(
            train_nodes.shape[0], cfg.seed, epoch, rank=ctx.rank, world_size=ctx.world_size
        )
        seeds = seed_batches(train_nodes[order], cfg.batch_size, epoch, cfg.seed, shuffle=False)[
            :steps
        ]

        def sample_and_fetch(step: int, batch_seeds: torch.Tensor) -> PreparedBatch:
            return prepare_batch(
                sampler, fetcher, batch_seeds, epoch, skip + step, device, sync=not cfg.prefetch
            )

        return Prefetcher(sample_and_fetch, seeds[skip:], device, enabled=cfg.prefetch)

    def step(prepared: PreparedBatch) -> StepResult:
        started = time.perf_counter()
        prepared.wait()
        labels = prepared.batch.labels
        logits = trainable(prepared.features.float(), prepared.batch.blocks)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)  # train_s is the device's work, not the time to queue it
        return StepResult(
            loss,
            {
                "loss": loss.detach().double() * labels.shape[0],
                "seen": labels.shape[0],
                "correct": (logits.argmax(1) == labels).sum(),
                "sample_s": prepared.sample_s,
                "fetch_s": prepared.fetch_s,
                "train_s": time.perf_counter() - started,
            },
        )

    fetched_before = [0]

    def start_epoch(epoch: int) -> None:
        _sync(device)  # the epoch's clock starts with the device idle
        fetched_before[0] = fetcher.bytes_fetched

    def end_epoch(epoch: int, totals: EpochTotals) -> EpochResult:
        val_acc = evaluate(trainable, eval_sampler, fetcher, val_nodes, cfg.eval_batch_size, device)
        record = {
            "epoch": epoch,
            "loss": totals.mean("loss", "seen"),
            "train_acc": totals.mean("correct", "seen"),
            "val_acc": val_acc,
            "epoch_s": totals.seconds,
            **{key: totals.sums.get(key, 0.0) for key in ("sample_s", "fetch_s", "train_s")},
            # without prefetch, waiting for a batch is its sampling and fetching
            "stall_s": totals.data_seconds if cfg.prefetch else 0.0,
            "fetched_gb": (fetcher.bytes_fetched - fetched_before[0]) / 1e9,
        }
        if hasattr(fetcher, "epoch_stats"):
            record.update(fetcher.epoch_stats())
        loop.extra["history"] = [*loop.extra["history"], record]  # in every later checkpoint
        return EpochResult(
            {f"epoch/{k}": v for k, v in record.items() if k != "epoch"}, score=val_acc
        )

    loop.run(batches, step, end_epoch, start_epoch)
    history = loop.extra["history"]
    final_test = (
        evaluate(trainable, eval_sampler, fetcher, test_nodes, cfg.eval_batch_size, device)
        if cfg.epochs > 0
        else float("nan")
    )
    digest = weights_digest(model)
    best = {"val_acc": -1.0, "test_acc": float("nan"), "epoch": -1}
    if loop.best_epoch >= 0:
        best_test = final_test
        if loop.best_epoch != history[-1]["epoch"]:
            load_checkpoint(loop.best_checkpoint, model=model, restore_rng=False)
            best_test = evaluate(
                model, eval_sampler, fetcher, test_nodes, cfg.eval_batch_size, device
            )
        best = {"val_acc": loop.best_score, "test_acc": best_test, "epoch": loop.best_epoch}
    metrics = {
        "graph": {
            "name": graph.name,
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "feat_dim": graph.feat_dim,
            "feat_dtype": graph.feat_dtype,
            "num_classes": graph.num_classes,
            "path": str(graph.path),
        },
        "fetch_mode": cfg.fetch.mode,
        "model": cfg.model.name,
        "fanouts": fanouts,
        "batch_size": cfg.batch_size,
        "device": str(device),
        "world_size": ctx.world_size,
        "epochs": cfg.epochs,
        "setup_s": setup_s,
        "history": history,
        "mean_epoch_times_excluding_first": _mean_times(history),
        "final_val_acc": history[-1]["val_acc"] if history else float("nan"),
        "final_test_acc": final_test,
        "best": best,
        "chance_acc": float(
            np.bincount(graph.label[graph.label >= 0]).max() / max(int((graph.label >= 0).sum()), 1)
        ),
        "weights_sha256": digest,
        "host_table": {"kind": host_table, "shared_memory": shared_memory},
    }
    log.write_metrics(metrics)
    if ctx.is_distributed:
        (out / f"weights_rank{ctx.rank}.txt").write_text(digest)
        (out / f"host_table_rank{ctx.rank}.json").write_text(json.dumps(metrics["host_table"]))
    log.info(
        f"final: val_acc {metrics['final_val_acc']:.3f} test_acc {final_test:.3f} "
        f"(majority-class chance {metrics['chance_acc']:.3f})"
    )
    fetcher.close()
    for registration in registrations:
        registration.close()
    return metrics


def _mean_times(history: list[dict]) -> dict[str, float]:
    timed = history[1:] if len(history) > 1 else history  # the first epoch warms caches up
    return {
        key: float(np.mean([h[key] for h in timed])) if timed else float("nan")
        for key in ("epoch_s", "sample_s", "fetch_s", "train_s", "stall_s")
    }
