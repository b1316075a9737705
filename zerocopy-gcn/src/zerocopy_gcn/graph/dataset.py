"""The graph a ``data`` config names: a converted graph folder (``data.kind=folder``), or a
generated preset (``data.kind=preset``) cached under ``data.root`` in a folder named by its spec.

Not exported from :mod:`zerocopy_gcn.graph`: it reads Hydra paths and runs under torchrun,
which the converters have no need of.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import to_absolute_path

from trilab.errors import UserError
from zerocopy_gcn.graph.csr import CSRGraph, load_graph
from zerocopy_gcn.graph.rmat import RMatSpec, ensure_rmat, preset_spec

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from trilab.distributed import DistContext


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
    spec, folder = preset_location(data, Path(to_absolute_path(str(data.root))))
    is_main = ctx is None or ctx.is_main
    if is_main:
        ensure_rmat(folder, spec, name=data.preset, progress=progress)
    if ctx is not None:
        ctx.barrier()  # other ranks open the folder rank 0 wrote
    return load_graph(folder, validate="cheap" if not is_main else "full")


def preset_location(data: Mapping[str, Any], root: Path) -> tuple[RMatSpec, Path]:
    """The spec of the preset graph ``data`` describes (a preset name, optionally shrunk) and the
    folder under ``root`` it is cached in."""
    spec = preset_spec(
        data["preset"],
        num_nodes=data.get("num_nodes"),
        avg_degree=data.get("avg_degree"),
        feat_dim=data.get("feat_dim"),
        num_classes=data.get("num_classes"),
        feat_dtype=data.get("feat_dtype"),
        split=data.get("split"),
        seed=data.get("seed", 0),
    )
    return spec, preset_folder(root, data["preset"], spec)


def preset_folder(root: Path, preset: str, spec: RMatSpec) -> Path:
    """Where a generated preset graph is cached: one folder per distinct spec."""
    return root / (
        f"{preset}_n{spec.num_nodes}_e{spec.num_edges}_d{spec.feat_dim}"
        f"_c{spec.num_classes}_{spec.feat_dtype}_s{spec.seed}"
    )
