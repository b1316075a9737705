"""The paper's case study for any image: K region maps as heatmaps + the learned adjacency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from drag.data.images import (  # noqa: E402
    UNREADABLE_IMAGE_ERRORS,
    BadFileReport,
    image_to_tensor,
    printable_path,
    read_image,
)
from drag.inference import list_images, load_trained  # noqa: E402
from drag.model.drag import DRAG  # noqa: E402
from trilab.device import select_device  # noqa: E402
from trilab.entry import ensure_folder  # noqa: E402
from trilab.errors import writing  # noqa: E402
from trilab.hydra_utils import run_dir  # noqa: E402
from trilab.runlog import RunLogger  # noqa: E402

DISPLAY_SIDE = 320  # longer side of the photo as drawn, in pixels


def figure_path(image: str | Path, root: str | Path, out_dir: str | Path) -> Path:
    """``out_dir/<path relative to root>.regions.png``: the suffix and sub-folders are kept, so
    ``a.png``, ``a.gif`` and ``sub/a.png`` get three different figures."""
    image, root = Path(image), Path(root)
    relative = Path(image.name) if root.is_file() else image.relative_to(root)
    return Path(out_dir) / relative.parent / (relative.name + ".regions.png")


def display_photo(photo: Image.Image, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The photo at its own aspect ratio, longer side ``side`` (the model saw it squared)."""
    scale = side / max(photo.size)
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    return np.asarray(photo.resize(size, Image.BILINEAR))


def region_figure(
    photo: np.ndarray, maps: np.ndarray, adjacency: np.ndarray, title: str, p_private: float
):
    """Figure: the photo, the K region maps over it on ONE colour scale with a colour bar, and
    the adjacency matrix (diverging scale around 0: the authors' adjacency can be negative).

    ``maps`` (K x h x w, the model's raw region maps) are stretched to the photo's own aspect
    ratio. The scale starts at 0 (maps are weighted means of non-negative activations), so a
    featureless image draws as flat colour instead of "confident" regions.
    """
    height, width = photo.shape[:2]
    groups = maps.shape[0]
    upsampled = F.interpolate(
        torch.as_tensor(maps, dtype=torch.float32)[None],
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )[0].numpy()
    vmin = min(0.0, float(upsampled.min()))
    vmax = max(float(upsampled.max()), vmin + 1e-8)
    aspect = width / height
    fig, axes = plt.subplots(
        1,
        groups + 2,
        figsize=(2.4 * aspect * (groups + 1) + 4.0, 3.0),
        gridspec_kw={"width_ratios": [aspect] * (groups + 1) + [1.3]},
        layout="constrained",
    )
    axes[0].imshow(photo)
    axes[0].set_title(f"p_private={p_private:.2f}", fontsize=9)
    heat = None
    for k in range(groups):
        axes[k + 1].imshow(photo)
        heat = axes[k + 1].imshow(upsampled[k], cmap="jet", alpha=0.5, vmin=vmin, vmax=vmax)
        axes[k + 1].set_title(f"region {k}", fontsize=9)
    for ax in axes[: groups + 1]:
        ax.axis("off")
    colour_bar = fig.colorbar(heat, ax=list(axes[1 : groups + 1]), shrink=0.8, pad=0.01)
    colour_bar.set_label("region map value (shared scale)", fontsize=8)
    adj_ax = axes[-1]
    bound = max(float(np.abs(adjacency).max()), 1e-8)
    image = adj_ax.imshow(adjacency, cmap="coolwarm", vmin=-bound, vmax=bound)
    adj_ax.set_title("adjacency A", fontsize=9)
    adj_ax.set_xticks(range(groups))
    adj_ax.set_yticks(range(groups))
    for i in range(groups):
        for j in range(groups):
            adj_ax.text(j, i, f"{adjacency[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=adj_ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    return fig


@torch.no_grad()
def explain_image(
    model: DRAG,
    image_path: str,
    image_size: int,
    out_png: Path,
    device,
    title: str | None = None,
    photo: Image.Image | None = None,
) -> dict:
    photo = photo if photo is not None else read_image(image_path, image_size)
    tensor = image_to_tensor(photo, image_size).unsqueeze(0).to(device)
    result = model(tensor, output="all")
    p_private = float(F.softmax(result["logits"], dim=1)[0, 1])
    maps = result["region_maps"][0].cpu().numpy()
    adjacency = result["adjacency"][0].cpu().numpy()
    fig = region_figure(
        display_photo(photo),
        maps,
        adjacency,
        printable_path(title or Path(image_path).name),
        p_private,
    )
    try:
        with writing(out_png):
            out_png.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out_png, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return {
        "image": printable_path(image_path),
        "png": printable_path(out_png),
        "p_private": p_private,
        "adjacency": np.round(adjacency, 4).tolist(),
    }


def _say(log, message: str) -> None:
    if log is not None:
        log.info(message)
    else:
        print(message, flush=True)


def explain(images, checkpoint, out_dir, device="auto", max_images=16, log=None) -> list[dict]:
    paths = list_images(images)  # an empty folder is an error
    dev = select_device(device)
    model, info = load_trained(checkpoint, dev, ("drag",), "explain.py")
    if max_images and len(paths) > max_images:
        _say(
            log,
            f"{len(paths)} images found under {images}; drawing the first {max_images} "
            f"(max_images={max_images}), {len(paths) - max_images} not drawn",
        )
        paths = paths[:max_images]
    report = BadFileReport()
    results = []
    for path in paths:
        png = figure_path(path, images, out_dir)
        title = str(png.relative_to(out_dir))[: -len(".regions.png")]
        try:
            photo = read_image(path, info["image_size"])
        except UNREADABLE_IMAGE_ERRORS as error:  # the files predict.py skips, skipped here too
            report.add(path, f"{type(error).__name__}: {error}")
            continue
        results.append(explain_image(model, path, info["image_size"], png, dev, title, photo))
    report.warn(log, Path(out_dir) / "unreadable.tsv")
    return results


def run(cfg) -> list[dict]:
    out_dir = Path(cfg.out) if cfg.get("out") else run_dir()
    ensure_folder(out_dir, "figures folder")  # said before the model loads
    with RunLogger(out_dir, tensorboard=False) as log:
        results = explain(cfg.images, cfg.checkpoint, out_dir, cfg.device, cfg.max_images, log)
        log.info(f"{len(results)} region-map figure(s) written to {out_dir}")
        log.write_metrics({"figures": results})
    return results
