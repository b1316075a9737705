"""Minibatch GNN training with a pluggable feature-fetch mode; the Hydra entry point calls
:func:`train`.

One step: seeds -> neighbour sampling -> feature fetch -> forward/backward.  Each epoch reports
the time spent sampling, fetching and training (synchronised clocks; with prefetch on,
sample/fetch are the producer's own times and ``stall_s`` is what training waited for them).
Resuming, stops, checkpoints and the run folder are trilab's training loop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from trilab.checkpoint import checkpoint_dir, load_checkpoint, weights_digest
from trilab.distributed import DistContext, init_distributed
from trilab.errors import UserError
from trilab.hydra_utils import run_dir
from trilab.loop import EpochResult, EpochTotals, StepResult, TrainLoop, epoch_order
from trilab.run_folder import RUN_FILES, claim_run_folder
from trilab.runlog import RunLogger
from trilab.seed import seed_everything
from zerocopy_gcn.fetch import FeatureFetcher, build_fetcher
from zerocopy_gcn.graph.dataset import open_dataset
from zerocopy_gcn.host_table import HOST_TABLES, share_graph_arrays
from zerocopy_gcn.metrics import epoch_record, run_metrics
from zerocopy_gcn.models import build_model
from zerocopy_gcn.prefetch import Prefetcher, PreparedBatch, prepare_batch
from zerocopy_gcn.sampling import NeighborSampler, make_sampler, sampling_arrays, seed_batches


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
        record = epoch_record(epoch, totals, val_acc, fetcher, fetched_before[0], cfg.prefetch)
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
    metrics = run_metrics(
        cfg,
        ctx,
        graph,
        history,
        setup_s=setup_s,
        final_test=final_test,
        best=best,
        digest=digest,
        host_table={"kind": host_table, "shared_memory": shared_memory},
    )
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
