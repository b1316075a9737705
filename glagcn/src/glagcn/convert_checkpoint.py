"""Convert the authors' released ``.bin`` checkpoints into this project's checkpoint format.

``python -m glagcn.convert_checkpoint IN.bin OUT.pt [--skeleton h36m17] [--authors-model s_agcn]
[--causal]``

Their file is a dict whose ``model_pos`` holds a state dict with 2s-AGCN module names:
``data_bn`` (input BatchNorm), ``expand_gcn`` (the 2 -> C block: ``gcn1`` with ``conv_a`` /
``conv_b`` / ``conv_d`` per subset, ``PA``, ``bn``, ``down``; ``tcn1``; ``residual``),
``layers_tcngcn.N`` (the blocks, alternately stride 1 and stride f) and ``fc`` (one shared 1x1
output layer, or one per joint).  The configuration (levels, channels, temporal kernel, output
layer) is read off the tensors' shapes; anything unexpected is an error naming the key.  The
converted model uses the authors' temporal padding, so it computes what their model computes.

Their files do not say which of their model files wrote them, and two of their models have the
same parameter names: ``--authors-model`` picks it, and the converter prints which it built.

* ``s_agcn`` (default; ``common/s_agcn.py``, run by their main script ``run_s-agcn.py``): the
  dataset's own joints in, input BatchNorm, the skeleton's graph.  Their H36M GT/CPN and HumanEva
  GT checkpoints.
* ``he13`` (``common/s_agcn_HE_13.py``, run by ``run_s-agcn_HE_13.py``): COCO-17 detections in,
  mapped to the 15 HumanEva-I joints inside the model, no input BatchNorm (their ``data_bn`` is
  built but never applied, so its tensors are dropped), the 12-pair graph.  Their HumanEva
  Mask R-CNN checkpoint (``96_detectron_pt_coco_27_supervised_epoch_990.bin``).

``--causal``: the checkpoint was trained with their ``--causal`` (the window ends at the
predicted frame).  Nothing in their file records it, so it is a flag; the converted checkpoint
records it and evaluation and lifting pad the sequence causally.

The file is read with ``torch.load(weights_only=True)``: nothing in it can run code.  Their
training script also saved the data generator's NumPy ``RandomState`` under ``random_state``;
its pickled parts are read as inert placeholders (NumPy is never called) and dropped.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from glagcn.model import GLAGCN, build_model
from glagcn.skeleton import get_skeleton
from trilab.checkpoint import save_checkpoint
from trilab.errors import UserError, report_user_errors
from trilab.safe_load import load_torch_file

_GCN_PARTS = {"conv_a": "theta", "conv_b": "phi", "conv_d": "project", "down": "residual"}


class ConversionError(UserError, ValueError):
    """The file is not an authors' GLA-GCN checkpoint of a shape this model can take."""


@dataclass(frozen=True)
class AuthorsModel:
    """One of the authors' model files: what it computes, in this project's model options."""

    source: str
    description: str
    skeleton: str | None  # the only skeleton it is defined for, if any
    options: dict


AUTHORS_MODELS = {
    "s_agcn": AuthorsModel(
        "common/s_agcn.py (run_s-agcn.py)",
        "the dataset's joints in, input BatchNorm, the skeleton's graph",
        None,
        {"input_layout": "skeleton", "input_bn": True, "graph": "skeleton"},
    ),
    "he13": AuthorsModel(
        "common/s_agcn_HE_13.py (run_s-agcn_HE_13.py)",
        "COCO-17 in, mapped to 15 HumanEva-I joints inside the model, no input BatchNorm, "
        "the 12-pair graph",
        "humaneva15",
        {"input_layout": "coco17", "input_bn": False, "graph": "he13"},
    ),
}


class _Discarded:
    """Inert stand-in for the parts of a pickled NumPy RandomState (see the module notes)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


def _discard(*args, **kwargs) -> _Discarded:
    return _Discarded()


# What a pickled np.random.RandomState names, in NumPy < 1.17, 1.17-1.26 and 2.x.
_RANDOM_STATE_GLOBALS = [
    (_discard, "numpy.random.__RandomState_ctor"),
    (_discard, "numpy.random._pickle.__randomstate_ctor"),
    (_discard, "numpy.random._pickle.__bit_generator_ctor"),
    (_Discarded, "numpy.random._mt19937.MT19937"),
    (_discard, "numpy.core.multiarray._reconstruct"),
    (_discard, "numpy._core.multiarray._reconstruct"),
    (_Discarded, "numpy.ndarray"),
    (_discard, "numpy.dtype"),
    (_Discarded, f"{__name__}._Discarded"),
]


def read_authors_file(source: str | Path) -> dict:
    """The authors' checkpoint dict, read with ``torch.load(weights_only=True)``."""
    with torch.serialization.safe_globals(_RANDOM_STATE_GLOBALS):
        payload = load_torch_file(source, what="checkpoint")
    if not isinstance(payload, dict) or "model_pos" not in payload:
        raise ConversionError(f"{source}: expected a dict with 'model_pos' (the authors' format)")
    payload.pop("random_state", None)
    return payload


def _block_key(rest: str) -> str:
    """Names inside one TCN_GCN_unit: gcn1/tcn1/residual -> gcn/tcn/residual."""
    match = re.fullmatch(r"gcn1\.(conv_a|conv_b|conv_d|down)\.(.+)", rest)
    if match:
        return f"gcn.{_GCN_PARTS[match.group(1)]}.{match.group(2)}"
    if rest == "gcn1.PA":
        return "gcn.learned_adjacency"
    for ours, theirs in (("gcn.", "gcn1."), ("tcn.", "tcn1."), ("residual.", "residual.")):
        if rest.startswith(theirs):
            return ours + rest[len(theirs) :]
    raise ConversionError(f"unexpected key inside a block: {rest!r}")


def convert_state_dict(
    theirs: dict[str, torch.Tensor], authors_model: str = "s_agcn", causal: bool = False
) -> tuple[dict, dict]:
    """Their state dict -> (ours, model config)."""
    options = _authors_model(authors_model).options
    ours: dict[str, torch.Tensor] = {}
    block_ids: set[int] = set()
    fc: dict[str, torch.Tensor] = {}
    for key, value in theirs.items():
        key = key.removeprefix("module.")  # saved from DataParallel
        if key.endswith(".A") or key == "A":
            continue  # the fixed skeleton graph: rebuilt from the skeleton definition
        if key.startswith("data_bn."):
            if options["input_bn"]:
                ours["input_bn." + key[len("data_bn.") :]] = value
        elif key.startswith("expand_gcn."):
            ours["expand." + _block_key(key[len("expand_gcn.") :])] = value
        elif key.startswith("layers_tcngcn."):
            index, rest = key[len("layers_tcngcn.") :].split(".", 1)
            block_ids.add(int(index))
            ours[f"levels.{int(index) // 2}.{int(index) % 2}." + _block_key(rest)] = value
        elif key.startswith("fc."):
            fc[key[len("fc.") :]] = value
        else:
            raise ConversionError(
                f"unexpected key {key!r} (not data_bn, expand_gcn, layers_tcngcn or fc)"
            )
    if "expand.gcn.project.0.weight" not in ours:
        raise ConversionError("no expand_gcn.gcn1.conv_d.0.weight: not a GLA-GCN checkpoint")
    if not block_ids or sorted(block_ids) != list(range(len(block_ids))) or len(block_ids) % 2:
        raise ConversionError(f"layers_tcngcn indices {sorted(block_ids)} are not pairs 0..2L-1")
    channels = ours["expand.gcn.project.0.weight"].shape[0]
    kernel = ours["expand.tcn.conv.weight"].shape[2]
    levels = len(block_ids) // 2
    if set(fc) == {"weight", "bias"}:
        output_layer = "shared"
        ours["head.weight"] = fc["weight"].reshape(fc["weight"].shape[0], channels)
        ours["head.bias"] = fc["bias"]
    else:
        joints = sorted({int(k.split(".")[0]) for k in fc})
        if not joints:
            raise ConversionError("no fc (output layer) weights")
        output_layer = "per_joint"
        ours["head.weight"] = torch.stack(
            [fc[f"{j}.weight"].reshape(-1, channels).T for j in joints]
        )
        ours["head.bias"] = torch.stack([fc[f"{j}.bias"] for j in joints])
    config = {
        "filter_widths": [3] * levels,
        "channels": int(channels),
        "temporal_kernel": int(kernel),
        "output_layer": output_layer,
        "sequence_branch": False,
        "temporal_padding": "authors",
        "causal": bool(causal),
        **options,
    }
    return ours, config


def _authors_model(name: str) -> AuthorsModel:
    if name not in AUTHORS_MODELS:
        raise ConversionError(
            f"--authors-model {name!r} is not one of their model files: {sorted(AUTHORS_MODELS)}"
        )
    return AUTHORS_MODELS[name]


def build_converted_model(
    theirs: dict,
    skeleton_name: str = "h36m17",
    authors_model: str = "s_agcn",
    causal: bool = False,
) -> tuple[GLAGCN, dict]:
    required = _authors_model(authors_model).skeleton
    if required is not None and skeleton_name != required:
        raise ConversionError(
            f"--authors-model {authors_model} is defined for --skeleton {required}, "
            f"not {skeleton_name}"
        )
    ours, config = convert_state_dict(theirs, authors_model, causal)
    try:
        skeleton = get_skeleton(skeleton_name)
    except ValueError as error:
        raise ConversionError(f"--skeleton: {error}") from None
    model = build_model(config, skeleton)
    expected = model.state_dict()
    missing = sorted(
        set(expected) - set(ours) - {k for k in expected if k.endswith("skeleton_adjacency")}
    )
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"converted names do not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for key, value in ours.items():
        if value.shape != expected[key].shape:
            raise ConversionError(
                f"{key}: shape {tuple(value.shape)} in the file, "
                f"{tuple(expected[key].shape)} expected"
            )
    model.load_state_dict(ours, strict=False)
    return model, config


def convert_file(
    source: str | Path,
    target: str | Path,
    skeleton_name: str = "h36m17",
    authors_model: str = "s_agcn",
    causal: bool = False,
) -> Path:
    payload = read_authors_file(source)
    model, config = build_converted_model(
        payload["model_pos"], skeleton_name, authors_model, causal
    )
    config["receptive_field"] = 3 ** len(config["filter_widths"])
    return save_checkpoint(
        target,
        model=model,
        epoch=int(payload.get("epoch", 0)),
        extra={
            "model_config": config,
            "skeleton": skeleton_name,
            "converted_from": str(source),
            "authors_model": authors_model,
        },
    )


def built_model_line(authors_model: str, causal: bool, skeleton_name: str = "h36m17") -> str:
    """What the converter tells the user it built (their files cannot say)."""
    model = _authors_model(authors_model)
    window = "causal (window ends at the predicted frame)" if causal else "symmetric window"
    line = (
        f"built the authors' {authors_model} model, {model.source}: {model.description}; {window}"
    )
    if skeleton_name == "humaneva15" and authors_model == "s_agcn":
        # the two HumanEva files have the same keys: say how to get the other model
        line += " (their Mask R-CNN file, *_detectron_pt_coco_*, needs --authors-model he13)"
    return line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--skeleton", default="h36m17")
    parser.add_argument(
        "--authors-model",
        default="s_agcn",
        choices=sorted(AUTHORS_MODELS),
        help="which of their model files wrote the checkpoint: s_agcn (run_s-agcn.py, default) "
        "or he13 (run_s-agcn_HE_13.py, their HumanEva Mask R-CNN checkpoint)",
    )
    parser.add_argument(
        "--causal",
        action="store_true",
        help="the checkpoint was trained with their --causal (their files do not record it)",
    )
    args = parser.parse_args(argv)
    written = report_user_errors(
        lambda: convert_file(
            args.source, args.target, args.skeleton, args.authors_model, args.causal
        ),
        program="glagcn.convert_checkpoint",
    )
    print(built_model_line(args.authors_model, args.causal, args.skeleton))
    print(f"written {written}")


if __name__ == "__main__":
    main()
