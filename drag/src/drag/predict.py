"""Score a folder of images: CSV of path, p_private, label; unreadable files listed apart."""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from drag.data.dataset import ImageListDataset, Sample, collate_skip_bad
from drag.data.images import BadFileReport, printable_path
from drag.errors import NoImagesError
from drag.inference import decision_threshold, list_images, load_trained
from trilab.device import select_device
from trilab.entry import ensure_folder
from trilab.errors import WriteError, writing
from trilab.hydra_utils import run_dir
from trilab.runlog import RunLogger


@torch.no_grad()
def predict_folder(
    images: str | Path,
    checkpoint: str | Path,
    out_csv: str | Path,
    device: str = "auto",
    batch_size: int = 32,
    threshold: float | None = None,
    num_workers: int = 0,
    log=None,
) -> dict:
    paths = list_images(images)  # an empty folder is an error, not an empty CSV
    dev = select_device(device)
    model, info = load_trained(checkpoint, dev, ("drag", "finetune_backbone"), "predict.py")
    threshold = decision_threshold(info, threshold, log)
    dataset = ImageListDataset([Sample(p, -1) for p in paths], info["image_size"])
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skip_bad
    )
    report = BadFileReport()
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    # Rows go to a marked partial file, renamed over ``out_csv`` only when every image is done:
    # a crash or kill leaves the previous results in place and the partial file named as such.
    partial = out_csv.with_name(out_csv.name + ".partial")
    n_private = n_done = 0
    batches = log.progress(loader, desc="predict", total=len(loader)) if log else loader
    try:
        with writing(partial), open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "p_private", "label"])
            for batch in batches:
                report.extend(batch["failed"])
                if not batch["paths"]:
                    continue
                probs = F.softmax(model(batch["images"].to(dev)).float(), dim=1)[:, 1].cpu()
                for path, p in zip(batch["paths"], probs.tolist(), strict=True):
                    label = "private" if p >= threshold else "public"
                    n_private += label == "private"
                    writer.writerow([printable_path(path), f"{p:.6f}", label])
                n_done += len(batch["paths"])
            handle.flush()
            os.fsync(handle.fileno())
    except WriteError:
        with contextlib.suppress(OSError):  # a file that cannot be finished only takes space
            partial.unlink(missing_ok=True)
        raise
    unreadable = out_csv.with_name(out_csv.stem + "_unreadable.tsv")
    if n_done == 0:
        partial.unlink()
        report.write(unreadable)
        raise NoImagesError(
            f"none of the {len(paths)} image file(s) under {images} could be read; "
            f"reasons in {unreadable}"
        )
    os.replace(partial, out_csv)
    if not report.write(unreadable):
        unreadable.unlink(missing_ok=True)  # a previous run's list would no longer be true
    summary = {
        "images": n_done,
        "private": n_private,
        "unreadable": len(report),
        "threshold": threshold,
        "csv": str(out_csv),
        "unreadable_list": str(unreadable) if len(report) else None,
    }
    if log is not None:
        if len(report):
            log.warning(report.summary() + f"; list in {unreadable}")
        log.info(
            f"{n_done} images scored ({n_private} private at threshold {threshold:.3f}) "
            f"-> {out_csv}"
        )
    return summary


def run(cfg) -> dict:
    out_dir = run_dir()
    out_csv = Path(cfg.out) if cfg.get("out") else out_dir / "predictions.csv"
    ensure_folder(out_csv.parent)  # a folder that cannot be written: said before the model loads
    with RunLogger(out_dir, tensorboard=False) as log:
        summary = predict_folder(
            cfg.images,
            cfg.checkpoint,
            out_csv,
            cfg.device,
            cfg.batch_size,
            cfg.get("threshold"),
            cfg.get("num_workers", 0),
            log,
        )
        log.write_metrics(summary)
    return summary
