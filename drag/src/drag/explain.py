"""The paper's case study for any image: K region maps as heatmaps + the learned adjacency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from drag.data.images import BadFileReport, image_to_tensor, read_image, tensor_to_uint8  # noqa: E402
from drag.inference import list_images, load_trained  # noqa: E402
from drag.model.drag import DRAG  # noqa: E402
from trilab.device import select_device  # noqa: E402
from trilab.hydra_utils import run_dir  # noqa: E402
from trilab.runlog import RunLogger  # noqa: E402


@torch.no_grad()
def explain_image(model: DRAG, image_path: str, image_size: int, out_png: Path, device) -> dict:
    tensor = image_to_tensor(read_image(image_path), image_size).unsqueeze(0).to(device)
    result = model(tensor, output="all")
    p_private = float(F.softmax(result["logits"], dim=1)[0, 1])
    maps = result["region_maps"][0]
    maps = (
        F.interpolate(
            maps[None], size=(image_size, image_size), mode="bilinear", align_corners=False
        )[0]
        .cpu()
        .numpy()
    )
    adjacency = result["adjacency"][0].cpu().numpy()
    rgb = tensor_to_uint8(tensor[0])
    groups = maps.shape[0]
    fig, axes = plt.subplots(1, groups + 2, figsize=(2.6 * (groups + 2), 2.9))
    axes[0].imshow(rgb)
    axes[0].set_title(f"p_private={p_private:.2f}", fontsize=9)
    for k in range(groups):
        m = maps[k]
        m = (m - m.min()) / max(float(m.max() - m.min()), 1e-8)
        axes[k + 1].imshow(rgb)
        axes[k + 1].imshow(m, cmap="jet", alpha=0.5)
        axes[k + 1].set_title(f"region {k}", fontsize=9)
    for ax in axes[: groups + 1]:
        ax.axis("off")
    im = axes[-1].imshow(adjacency, cmap="viridis")
    axes[-1].set_title("adjacency A", fontsize=9)
    axes[-1].set_xticks(range(groups))
    axes[-1].set_yticks(range(groups))
    for i in range(groups):
        for j in range(groups):
            axes[-1].text(
                j, i, f"{adjacency[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white"
            )
    fig.colorbar(im, ax=axes[-1], fraction=0.046)
    fig.suptitle(Path(image_path).name, fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return {
        "image": image_path,
        "png": str(out_png),
        "p_private": p_private,
        "adjacency": np.round(adjacency, 4).tolist(),
    }


def explain(images, checkpoint, out_dir, device="auto", max_images=16, log=None) -> list[dict]:
    dev = select_device(device)
    model, info = load_trained(checkpoint, dev)
    if info["kind"] != "drag":
        raise ValueError(f"{checkpoint} is a backbone-only checkpoint; explain needs a DRAG one")
    report = BadFileReport()
    results = []
    for path in list_images(images)[:max_images]:
        png = Path(out_dir) / (Path(path).stem + "_regions.png")
        try:
            results.append(explain_image(model, path, info["image_size"], png, dev))
        except OSError as error:
            report.add(path, f"{type(error).__name__}: {error}")
    report.warn(log, Path(out_dir) / "unreadable.tsv")
    return results


def run(cfg) -> list[dict]:
    out_dir = Path(cfg.out) if cfg.get("out") else run_dir()
    with RunLogger(out_dir, tensorboard=False) as log:
        results = explain(cfg.images, cfg.checkpoint, out_dir, cfg.device, cfg.max_images, log)
        log.info(f"{len(results)} region-map figure(s) written to {out_dir}")
        log.write_metrics({"figures": results})
    return results
