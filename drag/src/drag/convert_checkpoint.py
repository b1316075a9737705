"""Import weights trained with the authors' DRAG notebooks as one checkpoint of this project.

    python -m drag.convert_checkpoint --backbone RESNET.pth --cgl CGL.pth --head DGCN.pth \\
        --groups K OUT.pt

The notebooks save three state dicts with ``torch.save(module.state_dict())``:

* backbone: a torchvision ResNet-101 whose ``avgpool`` and ``fc`` were replaced by empty
  ``nn.Sequential`` (so it has no ``fc.*`` keys);
* channel grouping layer: ``fc1`` Linear(C, C*K/2), ``fc2`` Linear(C*K/2, C*K); group k's
  channel weights are outputs k*C .. (k+1)*C - 1 of ``fc2``, which is this project's layout;
* head: ``fc1``/``fc2``/``fc3`` = query/key/value of the adjacency, ``mha.output_linear``,
  ``conv1``/``conv2`` (PyTorch Geometric DenseGCNConv: 1.x stored ``weight`` as an (in, out)
  matrix used as ``x @ weight``, later versions ``lin.weight`` as (out, in)), ``fc_cls``
  Linear(K+1, 2) over [global map, K node maps]; ``conv.*`` and ``mha.linear_layers.*`` are
  unused by the model and ignored.

Every file is read with ``torch.load(weights_only=True)``: tensors and plain data only. The
result has stage "drag" and a ``model_config``, so ``predict.py``, ``explain.py`` and
``evaluate.py`` take it; it carries no validation threshold (predict.py uses 0.5 and says so;
``evaluate.py`` reports the threshold a validation split chooses, ``threshold=T`` sets it).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import torch

from drag.checkpoint_stage import AUTHORS_SOURCE
from drag.errors import DragInputError
from drag.model.backbone import Backbone
from drag.model.drag import build_drag
from trilab.atomic import atomic_save
from trilab.checkpoint import FORMAT_VERSION
from trilab.entry import ensure_folder
from trilab.errors import report_user_errors
from trilab.safe_load import load_torch_file

# torchvision ResNet module names -> positions in Backbone.trunk
TRUNK_INDEX = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}
HEAD_IGNORED = ("conv.", "mha.linear_layers.")
ATTN_DROPOUT, GCN_DROPOUT = 0.1, 0.5  # the notebook's values (dropout is off at inference)


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from ``path``, without a DataParallel ``module.`` prefix."""
    state = load_torch_file(path, what=what)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise DragInputError(f"{path} is not a state dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _take(state: dict, key: str, shape: tuple[int, ...], source: str) -> torch.Tensor:
    if key not in state:
        raise DragInputError(f"{source} has no {key!r} (keys: {', '.join(sorted(state)[:8])} ...)")
    tensor = state[key]
    if tuple(tensor.shape) != shape:
        raise DragInputError(f"{source}: {key!r} has shape {tuple(tensor.shape)}, expected {shape}")
    return tensor


def _refuse_unexpected(state: dict, used: set[str], source: str, ignored=()) -> None:
    unexpected = sorted(k for k in state if k not in used and not k.startswith(ignored))
    if unexpected:
        raise DragInputError(f"{source} has keys this converter does not know: {unexpected[:5]}")


def backbone_state(state: dict, source: str) -> dict[str, torch.Tensor]:
    """torchvision ResNet keys -> ``backbone.trunk.*`` (``fc.*``, if present, is not used)."""
    mapped = {}
    for key, tensor in state.items():
        module, _, rest = key.partition(".")
        if module == "fc":
            continue
        if module not in TRUNK_INDEX:
            raise DragInputError(f"{source}: {key!r} is not a torchvision ResNet parameter")
        mapped[f"backbone.trunk.{TRUNK_INDEX[module]}.{rest}"] = tensor
    return mapped


def cgl_state(state: dict, source: str, channels: int, groups: int) -> dict[str, torch.Tensor]:
    hidden = channels * groups // 2
    shapes = {
        "fc1.weight": (hidden, channels),
        "fc1.bias": (hidden,),
        "fc2.weight": (channels * groups, hidden),
        "fc2.bias": (channels * groups,),
    }
    if "fc2.bias" in state and state["fc2.bias"].shape[0] % channels == 0:
        found = state["fc2.bias"].shape[0] // channels
        if found != groups:
            raise DragInputError(
                f"{source}: 'fc2' has {state['fc2.bias'].shape[0]} outputs = {found} groups of "
                f"{channels} channels, but --groups is {groups}"
            )
    _refuse_unexpected(state, set(shapes), source)
    return {f"cgl.{k}": _take(state, k, shape, source) for k, shape in shapes.items()}


def _gcn_layer(state: dict, name: str, node_dim: int, source: str) -> tuple[dict, set[str]]:
    """One DenseGCNConv: PyG 1.x ``weight`` (in, out) or newer ``lin.weight`` (out, in)."""
    if f"{name}.lin.weight" in state:
        weight = _take(state, f"{name}.lin.weight", (node_dim, node_dim), source)
        used = {f"{name}.lin.weight", f"{name}.bias"}
    else:
        # x @ weight == x @ (weight^T)^T: the (out, in) matrix of a Linear is the transpose
        weight = _take(state, f"{name}.weight", (node_dim, node_dim), source).t().contiguous()
        used = {f"{name}.weight", f"{name}.bias"}
    bias = _take(state, f"{name}.bias", (node_dim,), source)
    return {f"gcn.{name}.lin.weight": weight, f"gcn.{name}.bias": bias}, used


def head_state(state: dict, source: str, groups: int) -> tuple[dict, int, int]:
    """(mapped parameters, node dimension H*W, attention dimension)."""
    if "fc1.weight" not in state:
        raise DragInputError(f"{source} has no 'fc1.weight': not the DRAG head's state dict")
    attn_dim, node_dim = state["fc1.weight"].shape
    if "fc3.weight" in state and state["fc3.weight"].shape[0] != groups:
        raise DragInputError(
            f"{source}: 'fc3' (the value projection) has {state['fc3.weight'].shape[0]} outputs "
            f"= K, but --groups is {groups}"
        )
    pairs = {  # authors' name -> (this project's name, weight shape)
        "fc1": ("adjacency.query", (attn_dim, node_dim)),
        "fc2": ("adjacency.key", (attn_dim, node_dim)),
        "fc3": ("adjacency.value", (groups, node_dim)),
        "mha.output_linear": ("adjacency.output", (groups, groups)),
        "fc_cls": ("head", (2, groups + 1)),
    }
    mapped, used = {}, set()
    for theirs, (ours, shape) in pairs.items():
        mapped[f"{ours}.weight"] = _take(state, f"{theirs}.weight", shape, source)
        mapped[f"{ours}.bias"] = _take(state, f"{theirs}.bias", shape[:1], source)
        used |= {f"{theirs}.weight", f"{theirs}.bias"}
    for name in ("conv1", "conv2"):
        layer, layer_keys = _gcn_layer(state, name, node_dim, source)
        mapped.update(layer)
        used |= layer_keys
    _refuse_unexpected(state, used, source, HEAD_IGNORED)
    return mapped, int(node_dim), int(attn_dim)


def resnet_feature_hw(image_size: int) -> tuple[int, int]:
    """layer4 map side of a torchvision ResNet: five stride-2 steps, each rounding up."""
    side = image_size
    for _ in range(5):
        side = (side + 1) // 2
    return side, side


def convert(
    backbone: dict,
    cgl: dict,
    head: dict,
    groups: int,
    arch: str = "resnet101",
    image_size: int = 448,
    sources: Mapping[str, str] | None = None,
    dropout_at_eval: bool = False,
) -> dict:
    """The three state dicts -> a checkpoint payload of this project (stage "drag")."""
    sources = dict(sources or {"backbone": "backbone", "cgl": "cgl", "head": "head"})
    if groups < 1:
        raise DragInputError(f"--groups must be at least 1, got {groups}")
    feature_hw = resnet_feature_hw(image_size)
    head_params, node_dim, attn_dim = head_state(head, sources["head"], groups)
    if node_dim != feature_hw[0] * feature_hw[1]:
        raise DragInputError(
            f"{sources['head']}: the head takes {node_dim}-d nodes, but {image_size} px images "
            f"give {feature_hw[0]}x{feature_hw[1]} = {feature_hw[0] * feature_hw[1]} "
            "(the authors used 448 px: 14x14 = 196); set --image-size"
        )
    config = {
        "arch": arch,
        "groups": int(groups),
        "feature_hw": list(feature_hw),
        "image_size": int(image_size),
        "attn_dim": attn_dim,
        "attn_dropout": ATTN_DROPOUT,
        "gcn_dropout": GCN_DROPOUT,
        "gcn_dropout_at_eval": bool(dropout_at_eval),
    }
    model = build_drag(Backbone(arch, pretrained=False), config)
    state = {
        **backbone_state(backbone, sources["backbone"]),
        **cgl_state(cgl, sources["cgl"], model.backbone.channels, groups),
        **head_params,
        # the authors' backbone has no classifier of its own; DRAG never uses this one
        "backbone.fc.weight": torch.zeros_like(model.backbone.fc.weight),
        "backbone.fc.bias": torch.zeros_like(model.backbone.fc.bias),
    }
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = "; ".join(str(error).splitlines()[:3])
        raise DragInputError(
            f"{sources['backbone']} does not fit a torchvision {arch}: {first}"
        ) from None
    return {
        "format_version": FORMAT_VERSION,
        "epoch": -1,
        "model": model.state_dict(),
        "optimizer": None,
        "scheduler": None,
        "rng": None,
        "generators": {},
        "extra": {
            "stage": "drag",
            "model_config": config,
            "source": AUTHORS_SOURCE,
            "converted_from": {k: str(v) for k, v in sources.items()},
        },
    }


def convert_files(
    backbone: str | Path,
    cgl: str | Path,
    head: str | Path,
    groups: int,
    out: str | Path,
    arch: str = "resnet101",
    image_size: int = 448,
    dropout_at_eval: bool = False,
) -> Path:
    payload = convert(
        read_state_dict(backbone, "backbone state dict"),
        read_state_dict(cgl, "channel grouping layer state dict"),
        read_state_dict(head, "DRAG head state dict"),
        groups,
        arch,
        image_size,
        {"backbone": str(backbone), "cgl": str(cgl), "head": str(head)},
        dropout_at_eval,
    )
    return atomic_save(payload, out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m drag.convert_checkpoint",
        description="Convert the authors' notebook state dicts into one DRAG checkpoint.",
    )
    parser.add_argument("--backbone", required=True, help="ResNet state dict (no fc.* keys)")
    parser.add_argument("--cgl", required=True, help="channel grouping layer state dict")
    parser.add_argument("--head", required=True, help="attention/GCN/classifier state dict")
    parser.add_argument("--groups", type=int, required=True, help="K, the number of regions")
    parser.add_argument("--arch", default="resnet101", help="torchvision ResNet of the backbone")
    parser.add_argument("--image-size", type=int, default=448, help="input side in pixels")
    parser.add_argument(
        "--dropout-at-eval",
        action="store_true",
        help="keep the GCN dropout on at inference, as the notebook did (stochastic scores)",
    )
    parser.add_argument("out", help="the checkpoint to write (e.g. authors_drag.pt)")
    args = parser.parse_args(argv)
    # a target folder that cannot be written is said before three state dicts are read
    ensure_folder(Path(args.out).parent)
    out = convert_files(
        args.backbone,
        args.cgl,
        args.head,
        args.groups,
        args.out,
        args.arch,
        args.image_size,
        args.dropout_at_eval,
    )
    print(
        f"wrote {out}: DRAG ({args.arch}, K={args.groups}, {args.image_size} px) from the "
        "authors' notebook weights; no validation threshold stored: predict.py uses 0.5 "
        "unless threshold=T is given (evaluate.py reports one chosen on a validation split)"
    )
    return out


if __name__ == "__main__":
    report_user_errors(main, program="drag.convert_checkpoint")
