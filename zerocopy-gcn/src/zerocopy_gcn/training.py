"""Minibatch GNN training with a pluggable feature-fetch mode; the Hydra entry point calls
:func:`train`.

One step: seeds -> neighbour sampling -> feature fetch -> forward/backward.  Each epoch reports
the time spent sampling, fetching and training (synchronised clocks; with prefetch on,
sample/fetch are the producer's own times and ``stall_s`` is what training waited for them).
The run's set-up, resuming, stops, checkpoints and the run folder are trilab's
(:func:`trilab.run.start_run` and its training loop).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.nn import functional as F

from trilab.checkpoint import load_checkpoint
from trilab.errors import UserError
from trilab.loop import EpochResult, EpochTotals, StepResult, epoch_order, steps_per_epoch
from trilab.run import Run, start_run
from trilab.run_files import per_rank_file
from trilab.weights import weights_digest
from zerocopy_gcn.fetch import FeatureFetcher, build_fetcher
from zerocopy_gcn.graph.dataset import open_dataset
from zerocopy_gcn.host_table import HOST_TABLES, share_graph_arrays
from zerocopy_gcn.metrics import epoch_record, run_metrics
from zerocopy_gcn.models import build_model
from zerocopy_gcn.prefetch import Prefetcher, PreparedBatch, prepare_batch
from zerocopy_gcn.sampling import (
    NeighborSampler,
    check_fanouts,
    make_sampler,
    sampling_arrays,
    seed_batches,
)


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
    with start_run(cfg, project="zerocopy_gcn") as run, contextlib.ExitStack() as resources:
        return _train(cfg, run, resources)


def _train(cfg: DictConfig, run: Run, resources: contextlib.ExitStack) -> dict[str, Any]:
    """The run; what holds pinned or registered memory is closed by ``resources`` when the run
    ends, however it ends."""
    ctx, log, device = run.ctx, run.log, run.device
    setup_start = time.perf_counter()
    host_table = cfg.get("host_table", "mmap")
    if host_table not in HOST_TABLES:  # before opening (or generating) the graph
        raise UserError(f"host_table must be one of {HOST_TABLES}, got {host_table!r}")
    check_fanouts(cfg.fanouts)
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
    for registration in registrations:
        resources.callback(registration.close)
    sampler_cfg = cfg.get("sampler") or {}
    kind, threads = sampler_cfg.get("kind", "auto"), int(sampler_cfg.get("num_threads", 0) or 0)
    sampler = make_sampler(
        kind,
        graph,
        fanouts,
        seed=cfg.seed,
        rank=ctx.rank,
        device=sample_device,
        num_threads=threads,
        **csr,
    )
    # evaluation draws with epoch=-1, which keeps its batches apart from every training epoch's
    eval_sampler = make_sampler(
        kind, graph, fanouts, seed=cfg.seed, device=sample_device, num_threads=threads, **csr
    )
    fetcher = build_fetcher(cfg.fetch, graph, device, warn=log.warning)
    resources.callback(fetcher.close)
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
    steps = steps_per_epoch(
        train_nodes.shape[0], cfg.batch_size, ctx.world_size, cfg.get("max_batches")
    )
    loop = run.loop(
        trainable,
        {"optimizer": optimizer},
        epochs=cfg.epochs,
        steps_per_epoch=steps,
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
        (run.folder / per_rank_file("weights", ctx.rank, ".txt")).write_text(digest)
        (run.folder / per_rank_file("host_table", ctx.rank, ".json")).write_text(
            json.dumps(metrics["host_table"])
        )
    log.info(
        f"final: val_acc {metrics['final_val_acc']:.3f} test_acc {final_test:.3f} "
        f"(majority-class chance {metrics['chance_acc']:.3f})"
    )
    return metrics
