"""The four stages of the recipe: finetune_backbone -> cluster -> pretrain_cgl -> drag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from drag.checkpoint_stage import require_stage
from drag.cluster import cluster_channels, load_clusters, save_clusters
from drag.engine import evaluate_splits
from drag.errors import DragInputError
from drag.model.backbone import Backbone
from drag.model.cgl import cgl_pretrain_loss, membership_targets
from drag.model.drag import DRAG, build_drag
from drag.model.losses import distance_loss, diversity_loss
from drag.runtime import Run, fit
from trilab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint

STAGES = ("finetune_backbone", "cluster", "pretrain_cgl", "drag")


def _path(run: Run, override, default: Path) -> Path:
    return Path(override) if override else default


def backbone_checkpoint(run: Run) -> Path:
    default = run.stage_dir("finetune_backbone") / "checkpoints" / "best.pt"
    return _path(run, run.cfg.paths.backbone, default)


def clusters_path(run: Run) -> Path:
    return _path(run, run.cfg.paths.clusters, run.stage_dir("cluster") / "clusters.pt")


def cgl_checkpoint(run: Run) -> Path:
    default = run.stage_dir("pretrain_cgl") / "checkpoints" / "best.pt"
    return _path(run, run.cfg.paths.cgl, default)


def load_backbone(run: Run) -> Backbone:
    path = backbone_checkpoint(run)
    payload = read_checkpoint(path)
    require_stage(payload, path, ("finetune_backbone",), "this stage")
    backbone = Backbone(run.cfg.model.arch, pretrained=False)
    load_checkpoint(path, model=backbone, restore_rng=False)
    return backbone.to(run.device)


def model_config(run: Run, feature_hw) -> dict:
    m = run.cfg.model
    return {
        "arch": m.arch,
        "groups": int(run.cfg.groups),
        "feature_hw": list(feature_hw),
        "image_size": int(run.cfg.data.image_size),
        "attn_dim": int(m.attn_dim),
        "attn_dropout": float(m.attn_dropout),
        "gcn_dropout": float(m.gcn_dropout),
        "gcn_dropout_at_eval": bool(m.get("gcn_dropout_at_eval", False)),
    }


@torch.no_grad()
def feature_hw(backbone: Backbone, image_size: int, device) -> tuple[int, int]:
    backbone.eval()
    shape = backbone.features(torch.zeros(1, 3, image_size, image_size, device=device)).shape
    return int(shape[2]), int(shape[3])


def finetune_backbone(run: Run) -> dict:
    cfg = run.cfg.finetune
    model = Backbone(run.cfg.model.arch, pretrained=run.cfg.model.pretrained).to(run.device)
    wrapped = run.ctx.wrap_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ce = run.weighted_ce()

    def loss_fn(batch):
        return ce(wrapped(batch["images"].to(run.device)), batch["labels"].to(run.device))

    best = fit(
        run,
        "finetune_backbone",
        model,
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"arch": run.cfg.model.arch, "image_size": int(run.cfg.data.image_size)},
    )
    load_checkpoint(best, model=model, restore_rng=False)
    model.eval()
    result = evaluate_splits(model, run.eval_loaders(), run.device, run.report, run.log)
    run.write_json(run.stage_dir("finetune_backbone") / "metrics.json", result)
    run.log.info(f"baseline (backbone alone) test accuracy {result['test']['accuracy']:.4f}")
    return result


def cluster(run: Run) -> dict:
    backbone = load_backbone(run)
    cfg = run.cfg.cluster
    samples = run.splits["train"]
    if cfg.max_images:
        samples = samples[: int(cfg.max_images)]
    from drag.data import make_loader

    loader = make_loader(samples, run.cfg.data, train=False)
    result = {}
    if run.ctx.is_main:
        clusters = cluster_channels(
            backbone,
            loader,
            int(run.cfg.groups),
            run.device,
            int(run.cfg.data.image_size),
            seed=run.cfg.seed,
            n_init=cfg.n_init,
            minibatch=cfg.minibatch,
            progress=run.progress_until_stop,
            report=run.report,
        )
        path = save_clusters(clusters, clusters_path(run))
        result = {
            "groups": clusters.groups,
            "cluster_sizes": clusters.sizes(),
            "n_images": clusters.n_images,
            "seconds": clusters.seconds,
            "seconds_per_1000_images": clusters.seconds / clusters.n_images * 1000,
            "inertia": clusters.inertia,
            "artefact": str(path),
        }
        run.log.info(
            f"clustered {backbone.channels} channels into K={clusters.groups} groups "
            f"of sizes {clusters.sizes()} over {clusters.n_images} images "
            f"in {clusters.seconds:.1f}s -> {path}"
        )
        run.write_json(run.stage_dir("cluster") / "metrics.json", result)
    run.ctx.barrier()
    return result


def pretrain_cgl(run: Run) -> dict:
    cfg = run.cfg.pretrain_cgl
    backbone = load_backbone(run)
    clusters = load_clusters(clusters_path(run), backbone)  # refuses another backbone's artefact
    if clusters.groups != int(run.cfg.groups):
        raise DragInputError(
            f"{clusters_path(run)} has K={clusters.groups} but groups="
            f"{run.cfg.groups}: re-run the cluster stage"
        )
    config = model_config(run, feature_hw(backbone, run.cfg.data.image_size, run.device))
    model = build_drag(backbone, config).to(run.device)
    model.freeze_backbone = True
    membership = membership_targets(torch.from_numpy(clusters.assignment), clusters.groups)
    membership = membership.to(run.device)
    wrapped = run.ctx.wrap_model(model, find_unused_parameters=True)
    optimizer = torch.optim.Adam(model.cgl.parameters(), lr=cfg.lr)

    def loss_fn(batch):
        logits = wrapped(batch["images"].to(run.device), output="cgl_logits")
        return cgl_pretrain_loss(logits, membership, cfg.member_weight)

    best = fit(
        run,
        "pretrain_cgl",
        model,
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"model_config": config},
        select=False,
    )
    load_checkpoint(best, model=model, restore_rng=False)
    agreement = _membership_agreement(run, model, membership)
    result = {"membership_agreement": agreement, "epochs": cfg.epochs}
    run.log.info(
        f"CGL pretraining: argmax of w[:, c] matches the k-means cluster for "
        f"{agreement:.1%} of channels (val images)"
    )
    run.write_json(run.stage_dir("pretrain_cgl") / "metrics.json", result)
    return result


@torch.no_grad()
def _membership_agreement(run: Run, model: DRAG, membership: torch.Tensor) -> float:
    model.eval()
    hits, total = 0.0, 0
    for batch in run.loader("val"):
        if len(batch["labels"]) == 0:
            continue
        weights = model(batch["images"].to(run.device), output="cgl_logits")
        hits += float((weights.argmax(1) == membership.argmax(0)).float().mean()) * len(weights)
        total += len(weights)
    return hits / max(total, 1)


def train_drag(run: Run, build_model: Callable[[Backbone, dict], DRAG] = build_drag) -> dict:
    """The DRAG stage from the pretrained CGL; ``build_model`` lets a comparison swap parts of
    the model (the backbone and CGL weights are what carries over)."""
    cfg = run.cfg.drag
    path = cgl_checkpoint(run)
    payload = read_checkpoint(path)
    require_stage(payload, path, ("pretrain_cgl",), "the drag stage")
    config = payload["extra"]["model_config"]
    model = build_model(Backbone(config["arch"], pretrained=False), config)
    carried = {k: v for k, v in payload["model"].items() if k.startswith(("backbone.", "cgl."))}
    missing, _ = model.load_state_dict(carried, strict=False)
    if any(k.startswith(("backbone.", "cgl.")) for k in missing):
        raise CheckpointError(f"{path} lacks backbone/CGL weights: {missing[:3]}")
    model.to(run.device)
    wrapped = run.ctx.wrap_model(model, find_unused_parameters=True)
    head = [*model.adjacency.parameters(), *model.gcn.parameters(), *model.head.parameters()]
    optimizer = torch.optim.Adam(
        [
            {"params": model.backbone.parameters(), "lr": cfg.lr_backbone},
            {"params": model.cgl.parameters(), "lr": cfg.lr_cgl},
            {"params": head, "lr": cfg.lr_head},
        ],
        weight_decay=cfg.weight_decay,
    )
    ce = run.weighted_ce()
    region_weight = float(cfg.distance_weight) + float(cfg.diversity_weight)
    cgl_optimizer = torch.optim.Adam(model.cgl.parameters(), lr=cfg.lr_cgl)

    def on_epoch_start(epoch: int) -> None:
        model.freeze_backbone = epoch < cfg.freeze_backbone_epochs

    def loss_fn(batch):
        return ce(wrapped(batch["images"].to(run.device)), batch["labels"].to(run.device))

    def region_step(batch) -> None:
        """Alternating MA-CNN style step: only the CGL moves, on distance + diversity."""
        with torch.no_grad():
            features = model.backbone.features(batch["images"].to(run.device))
        maps, _ = model.cgl(features)
        loss = cfg.distance_weight * distance_loss(maps) + cfg.diversity_weight * diversity_loss(
            maps, cfg.diversity_margin
        )
        cgl_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        cgl_optimizer.step()

    best = fit(
        run,
        "drag",
        model,
        wrapped,
        optimizer,
        loss_fn,
        cfg.epochs,
        extra={"model_config": config},
        on_epoch_start=on_epoch_start,
        after_step=region_step if region_weight > 0 else None,
    )
    load_checkpoint(best, model=model, restore_rng=False)
    model.freeze_backbone = False
    model.eval()
    result = evaluate_splits(model, run.eval_loaders(), run.device, run.report, run.log)
    run.write_json(run.stage_dir("drag") / "metrics.json", result)
    run.log.info(f"DRAG test accuracy {result['test']['accuracy']:.4f}")
    return result


STAGE_FUNCTIONS = {
    "finetune_backbone": finetune_backbone,
    "cluster": cluster,
    "pretrain_cgl": pretrain_cgl,
    "drag": train_drag,
}
