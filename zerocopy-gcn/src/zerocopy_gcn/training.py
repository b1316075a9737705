"""Minibatch GNN training with a pluggable feature-fetch mode; the Hydra entry point calls
:func:`train`.

Loop per batch: seeds -> neighbour sampling -> feature fetch -> forward/backward.  Each epoch
reports the time spent sampling, fetching and training (synchronised clocks; with prefetch on,
sample/fetch are the producer's own times and ``stall_s`` is what training waited for them).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from trilab.checkpoint import (
    find_resume_checkpoint,
    gather_rng_states,
    load_checkpoint,
    resume_position,
    save_checkpoint,
)
from trilab.distributed import DistContext, init_distributed
from trilab.errors import UserError
from trilab.finite import FiniteLossGuard
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger
from trilab.seed import seed_everything
from trilab.stopping import StopSignal
from zerocopy_gcn.fetch import FeatureFetcher, make_fetcher
from zerocopy_gcn.graph import CSRGraph, RMatSpec, ensure_rmat, load_graph, preset_spec
from zerocopy_gcn.graph.csr import numpy_to_tensor
from zerocopy_gcn.host_table import HOST_TABLES, share_graph_arrays
from zerocopy_gcn.models import build_model
from zerocopy_gcn.prefetch import Prefetcher, prepare_batch
from zerocopy_gcn.sampling import NeighborSampler, make_sampler, seed_batches

FETCH_OPTIONS = {
    "conventional": ("num_threads", "check_bounds"),
    "gpu": ("check_bounds",),
    "zerocopy": ("kernel", "vector_loads", "sort_indices", "check_bounds", "max_threads"),
}


def open_dataset(data: DictConfig, ctx: DistContext | None = None,
                 progress: bool = True) -> CSRGraph:
    """A graph folder (``data.kind=folder``) or a generated preset (cached under ``data.root``)."""
    if data.kind == "folder":
        if not data.path:
            raise UserError("data.kind=folder needs data.path=<graph folder>")
        return load_graph(to_absolute_path(str(data.path)), validate=data.get("validate", "full"))
    if data.kind != "preset":
        raise UserError(f"data.kind must be 'preset' or 'folder', got {data.kind!r}")
    spec = preset_spec(
        data.preset, num_nodes=data.get("num_nodes"), avg_degree=data.get("avg_degree"),
        feat_dim=data.get("feat_dim"), num_classes=data.get("num_classes"),
        feat_dtype=data.get("feat_dtype"), split=data.get("split"), seed=data.get("seed", 0),
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
    return root / (f"{preset}_n{spec.num_nodes}_e{spec.num_edges}_d{spec.feat_dim}"
                   f"_c{spec.num_classes}_{spec.feat_dtype}_s{spec.seed}")


def build_fetcher(cfg_fetch: DictConfig, graph: CSRGraph, device: torch.device) -> FeatureFetcher:
    mode = cfg_fetch.mode
    options = {key: cfg_fetch[key] for key in FETCH_OPTIONS.get(mode, ()) if key in cfg_fetch}
    if mode == "zerocopy":
        options["read_only"] = not graph.feat.flags.writeable
    fetcher = make_fetcher(mode, graph.feat_tensor(), device, **options)
    cache_fraction = float(cfg_fetch.get("cache_fraction", 0.0) or 0.0)
    if cache_fraction > 0:
        from zerocopy_gcn.fetch.cached import CachedFetcher

        fetcher = CachedFetcher.for_graph(graph, fetcher, device, cache_fraction,
                                          ranking=cfg_fetch.get("cache_ranking", "degree"))
    return fetcher


def sampling_arrays(sample_on: str, graph: CSRGraph, device: torch.device
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
            registration = HostRegistration(numpy_to_tensor(array),
                                            read_only=not array.flags.writeable)
            registrations.append(registration)
            csr[name] = mapped_cuda_tensor(registration, device)
        return device, csr, registrations
    raise UserError(f"sample_on must be cpu, device or mapped, got {sample_on!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rank_shard(nodes: np.ndarray, epoch: int, seed: int, ctx: DistContext) -> np.ndarray:
    """This rank's training seeds for ``epoch``: a shared shuffle cut into equal shards (as a
    DistributedSampler with drop_last), so every rank runs the same number of steps."""
    order = np.random.default_rng([seed, epoch]).permutation(nodes.shape[0])
    per_rank = nodes.shape[0] // ctx.world_size
    return nodes[order[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]]


@torch.no_grad()
def evaluate(model: torch.nn.Module, sampler: NeighborSampler, fetcher: FeatureFetcher,
             nodes: np.ndarray, batch_size: int, device: torch.device) -> float:
    """Accuracy with sampled neighbourhoods (the sampler's fanouts, a fixed seed)."""
    if nodes.shape[0] == 0:
        return float("nan")
    model.eval()
    correct = 0
    for step, seeds in enumerate(seed_batches(nodes, batch_size, 0, 0, shuffle=False)):
        prepared = prepare_batch(sampler, fetcher, seeds, epoch=-1, step=step, device=device,
                                 sync=False)
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


@dataclass
class EpochProgress:
    """How far into an epoch this rank got: what a mid-epoch checkpoint carries."""

    steps: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0


def _stopped(stop: StopSignal, log: RunLogger, checkpoint: Path, where: str) -> None:
    log.info(f"{stop.signal_name}: stopped {where}; checkpoint {checkpoint}; continue with the "
             "same hydra.run.dir and resume=true")
    raise stop.stopped(where, checkpoint)


def train(cfg: DictConfig) -> dict[str, Any]:
    ctx = init_distributed(cfg.device)
    out_dir = run_dir()
    try:
        return _train(cfg, ctx, out_dir)
    finally:
        ctx.close()


def _train(cfg: DictConfig, ctx: DistContext, out_dir: Path) -> dict[str, Any]:
    device = ctx.device
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    log = RunLogger(out_dir, enabled=ctx.is_main, tensorboard=cfg.get("tensorboard", True))
    with log:
        if ctx.is_main:
            (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        setup_start = time.perf_counter()
        host_table = cfg.get("host_table", "mmap")
        if host_table not in HOST_TABLES:  # before opening (or generating) the graph
            raise UserError(f"host_table must be one of {HOST_TABLES}, got {host_table!r}")
        graph = open_dataset(cfg.data, ctx, progress=ctx.is_main)
        shared_memory = None
        if host_table == "shm":
            graph, shared_memory = share_graph_arrays(graph, ctx)
            log.info(f"graph arrays: one copy per machine in shared memory "
                     f"({sum(a['bytes'] for a in shared_memory.values()) / 2**30:.2f} GiB)")
        fanouts = list(cfg.fanouts)
        sample_device, csr, registrations = sampling_arrays(cfg.get("sample_on", "cpu"), graph,
                                                            device)
        sampler_cfg = cfg.get("sampler") or {}
        sampler_kind = sampler_cfg.get("kind", "auto")
        sampler_threads = int(sampler_cfg.get("num_threads", 0) or 0)
        sampler = make_sampler(sampler_kind, graph, fanouts, seed=cfg.seed * 1009 + ctx.rank,
                               device=sample_device, num_threads=sampler_threads, **csr)
        eval_sampler = make_sampler(sampler_kind, graph, fanouts, seed=cfg.seed + 7,
                                    device=sample_device, num_threads=sampler_threads, **csr)
        fetcher = build_fetcher(cfg.fetch, graph, device)
        model = build_model(cfg.model.name, graph.feat_dim, cfg.model.hidden, graph.num_classes,
                            len(fanouts), dropout=cfg.model.dropout,
                            heads=cfg.model.get("heads", 4)).to(device)
        model = ctx.wrap_model(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        ckpt_dir = out_dir / "checkpoints"
        last = ckpt_dir / "last.pt"
        start_epoch, history, best = 0, [], {"val_acc": -1.0, "test_acc": float("nan"),
                                             "epoch": -1}
        progress = EpochProgress()
        previous = find_resume_checkpoint(last, bool(cfg.resume), log)
        if previous is not None:
            state = load_checkpoint(previous, model=model, optimizer=optimizer,
                                    map_location=device, rank=ctx.rank,
                                    world_size=ctx.world_size)
            start_epoch, steps_done = resume_position(state)
            history = list(state["extra"].get("history", []))
            best = dict(state["extra"].get("best", best))
            if steps_done:
                progress = EpochProgress(**state["extra"]["partial_epoch"])
            log.info(f"resumed from {previous} at epoch {start_epoch}"
                     + (f" step {steps_done}" if steps_done else ""))
        guard = FiniteLossGuard(device, checkpoint_hint=f"the last good checkpoint is {last}")
        log.info(f"sampler: {type(sampler).__name__} on {sample_device}"
                 + (f", {sampler.num_threads} threads" if hasattr(sampler, "num_threads") else ""))
        log.info(f"graph {graph.name}: {graph.num_nodes} nodes, {graph.num_edges} edges, "
                 f"{graph.feat_dim} {graph.feat_dtype} features, {graph.num_classes} classes; "
                 f"fetch={cfg.fetch.mode} on {device}, world size {ctx.world_size}")
        setup_s = time.perf_counter() - setup_start
        train_nodes = np.asarray(graph.splits["train"])
        with StopSignal(ctx) as stop:
            for epoch in range(start_epoch, cfg.epochs):
                model.train()
                shard = rank_shard(train_nodes, epoch, cfg.seed, ctx)
                batches = seed_batches(shard, cfg.batch_size, epoch, cfg.seed, shuffle=False)
                batches = batches[:cfg.max_batches] if cfg.get("max_batches") else batches
                skip = progress.steps  # > 0 when resuming a run stopped inside this epoch
                make = lambda step, seeds, epoch=epoch, skip=skip: prepare_batch(  # noqa: E731
                    sampler, fetcher, seeds, epoch, skip + step, device, sync=not cfg.prefetch)
                times = {"sample_s": 0.0, "fetch_s": 0.0, "train_s": 0.0, "stall_s": 0.0}
                bytes_before = fetcher.bytes_fetched
                _sync(device)
                epoch_start = time.perf_counter()
                waited_from = time.perf_counter()
                iterator = Prefetcher(make, batches[skip:], device, enabled=cfg.prefetch)
                stream = iter(iterator)
                stopped = False
                for prepared in log.progress(stream, desc=f"epoch {epoch}",
                                             total=len(batches) - skip):
                    step_start = time.perf_counter()
                    times["stall_s"] += step_start - waited_from
                    prepared.wait()
                    times["sample_s"] += prepared.sample_s
                    times["fetch_s"] += prepared.fetch_s
                    labels = prepared.batch.labels
                    logits = model(prepared.features.float(), prepared.batch.blocks)
                    loss = F.cross_entropy(logits, labels)
                    guard.observe(loss, epoch, progress.steps)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    progress.loss_sum += float(loss.detach()) * labels.shape[0]
                    progress.correct += int((logits.argmax(1) == labels).sum())
                    progress.seen += labels.shape[0]
                    progress.steps += 1
                    _sync(device)
                    waited_from = time.perf_counter()
                    times["train_s"] += waited_from - step_start
                    if stop.requested(progress.steps):
                        stopped = True
                        break
                stream.close()  # ends a prefetching producer that is ahead of a stop
                guard.check()
                if stopped:
                    rng = gather_rng_states(ctx)
                    if ctx.is_main:
                        save_checkpoint(last, model=model, optimizer=optimizer, epoch=epoch - 1,
                                        steps_into_next_epoch=progress.steps, rng_per_rank=rng,
                                        extra={"history": history, "best": best,
                                               "partial_epoch": asdict(progress)})
                    ctx.barrier()
                    _stopped(stop, log, last, f"in epoch {epoch} after step {progress.steps}")
                total_loss, total_correct, total_seen = progress.loss_sum, progress.correct, \
                    progress.seen
                progress = EpochProgress()
                epoch_s = time.perf_counter() - epoch_start
                if not cfg.prefetch:
                    times["stall_s"] = 0.0  # sampling/fetching ran inline; counted above already
                val_acc = evaluate(model, eval_sampler, fetcher, np.asarray(graph.splits["val"]),
                                   cfg.eval_batch_size, device)
                record = {"epoch": epoch, "loss": total_loss / max(total_seen, 1),
                          "train_acc": total_correct / max(total_seen, 1), "val_acc": val_acc,
                          "epoch_s": epoch_s, **times,
                          "fetched_gb": (fetcher.bytes_fetched - bytes_before) / 1e9}
                if hasattr(fetcher, "epoch_stats"):
                    record.update(fetcher.epoch_stats())
                if val_acc > best["val_acc"]:
                    test_acc = evaluate(model, eval_sampler, fetcher,
                                        np.asarray(graph.splits["test"]), cfg.eval_batch_size,
                                        device)
                    best = {"val_acc": val_acc, "test_acc": test_acc, "epoch": epoch}
                    if ctx.is_main:
                        save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=optimizer,
                                        epoch=epoch, extra={"best": best})
                history.append(record)
                log.log_scalars({f"epoch/{k}": v for k, v in record.items() if k != "epoch"},
                                step=epoch)
                log.info(f"epoch {epoch}: loss {record['loss']:.4f} train_acc "
                         f"{record['train_acc']:.3f} val_acc {val_acc:.3f} | sample "
                         f"{times['sample_s']:.2f}s fetch {times['fetch_s']:.2f}s train "
                         f"{times['train_s']:.2f}s epoch {epoch_s:.2f}s")
                rng = gather_rng_states(ctx)
                if ctx.is_main:
                    save_checkpoint(last, model=model, optimizer=optimizer, epoch=epoch,
                                    extra={"history": history, "best": best}, rng_per_rank=rng)
                ctx.barrier()
                if epoch + 1 < cfg.epochs and stop.requested(0, force=True):
                    _stopped(stop, log, last, f"after epoch {epoch}")
        final_test = evaluate(model, eval_sampler, fetcher, np.asarray(graph.splits["test"]),
                              cfg.eval_batch_size, device) if cfg.epochs > 0 else float("nan")
        timed = history[1:] if len(history) > 1 else history  # first epoch = warm-up
        mean = {key: float(np.mean([h[key] for h in timed])) if timed else float("nan")
                for key in ("epoch_s", "sample_s", "fetch_s", "train_s", "stall_s")}
        metrics = {
            "graph": {"name": graph.name, "num_nodes": graph.num_nodes,
                      "num_edges": graph.num_edges, "feat_dim": graph.feat_dim,
                      "feat_dtype": graph.feat_dtype, "num_classes": graph.num_classes,
                      "path": str(graph.path)},
            "fetch_mode": cfg.fetch.mode, "model": cfg.model.name, "fanouts": fanouts,
            "batch_size": cfg.batch_size, "device": str(device), "world_size": ctx.world_size,
            "epochs": cfg.epochs, "setup_s": setup_s, "history": history,
            "mean_epoch_times_excluding_first": mean,
            "final_val_acc": history[-1]["val_acc"] if history else float("nan"),
            "final_test_acc": final_test, "best": best,
            "chance_acc": float(np.bincount(graph.label[graph.label >= 0]).max() /
                                max(int((graph.label >= 0).sum()), 1)),
            "weights_sha256": weights_digest(model),
            "host_table": {"kind": host_table, "shared_memory": shared_memory},
        }
        log.write_metrics(metrics)
        if ctx.is_distributed:
            (out_dir / f"weights_rank{ctx.rank}.txt").write_text(metrics["weights_sha256"])
            (out_dir / f"host_table_rank{ctx.rank}.json").write_text(
                json.dumps(metrics["host_table"]))
        log.info(f"final: val_acc {metrics['final_val_acc']:.3f} test_acc {final_test:.3f} "
                 f"(majority-class chance {metrics['chance_acc']:.3f})")
        fetcher.close()
        for registration in registrations:
            registration.close()
        return metrics

