"""A PyG ``FeatureStore`` over a graph folder's feature table and labels.

Attributes (homogeneous graph, ``group_name=None``): ``x``, the feature table in the dtype the
folder stores (fp32, fp16 or bf16; compute casts), and ``y``, the labels (int64, -1 where a
node has none).  What an index asks for decides where the rows come from:

* a tensor of node ids: the rows gathered onto the store's ``device`` by the fetch path that
  ``train.py``'s ``fetch=`` configures (:func:`zerocopy_gcn.fetch.build_fetcher`): on a CPU the
  conventional gather into reused buffers, on a GPU the zero-copy kernel, the GPU-resident
  table or the hot-row cache.  The loaders call :meth:`_multi_get_tensor` once per batch;
  In a ``DataLoader`` worker the rows are copied out of the reused buffer, since they travel
  to the loader's process in shared memory;
* ``None`` or a slice: the host table itself (the folder's read-only memory map, no copy), as
  PyG's stores return a stored tensor whole.

``put_tensor`` adds or replaces an attribute in memory (the folder is never written); a put
with an index writes rows of an attribute held in memory.  ``remove_tensor`` drops an in-memory
attribute, or hides a folder table from this store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import FeatureStore, TensorAttr

from zerocopy_gcn.fetch import MODES, FeatureFetcher, build_fetcher, check_indices
from zerocopy_gcn.graph.csr import CSRGraph
from zerocopy_gcn.pyg.folder import open_folder

FEATURES, LABELS = "x", "y"
# the fetch config of train.py (configs/fetch/*.yaml) without the keys a mode does not read
_FETCH_DEFAULTS = {"check_bounds": True, "cache_fraction": 0.0, "cache_ranking": "degree"}


class _FetchSettings(dict):
    """``train.py``'s ``fetch`` config as :func:`build_fetcher` reads it (``.mode`` and
    ``[key]``), without OmegaConf: the GPU check's Python runs the store without Hydra."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _fetch_config(fetch: str | Mapping[str, Any]) -> _FetchSettings:
    settings = {"mode": fetch} if isinstance(fetch, str) else dict(fetch)
    if settings.get("mode") not in MODES:
        raise ValueError(f"fetch mode must be one of {MODES}, got {settings.get('mode')!r}")
    return _FetchSettings({**_FETCH_DEFAULTS, **settings})


class FolderFeatureStore(FeatureStore):
    """``FolderFeatureStore("data/products", fetch="conventional", device="cpu")``.

    ``fetch``: a mode (``conventional``, ``zerocopy``, ``gpu``) or a mapping with ``train.py``'s
    ``fetch.*`` keys (e.g. ``{"mode": "zerocopy", "cache_fraction": 0.1}``); ``device``: where
    gathered rows go; ``validate``: how far :func:`~zerocopy_gcn.graph.csr.load_graph` checks
    the folder on opening (``full``, ``cheap``, ``none``).
    """

    def __init__(
        self,
        folder: str | Path | CSRGraph,
        fetch: str | Mapping[str, Any] = "conventional",
        device: torch.device | str = "cpu",
        validate: str = "cheap",
    ) -> None:
        super().__init__()
        self.graph = open_folder(folder, validate)
        self.device = torch.device(device)
        self._fetch_cfg = _fetch_config(fetch)
        self._fetcher: FeatureFetcher = build_fetcher(self._fetch_cfg, self.graph, self.device)
        self._pid = os.getpid()
        # folder tables, read-only and never copied whole; in-memory ones are put by the user
        self._folder: dict[str, torch.Tensor] = {
            FEATURES: self.graph.feat_tensor(),
            LABELS: torch.from_numpy(np.asarray(self.graph.label)),
        }
        self._memory: dict[tuple[str | None, str], torch.Tensor] = {}

    @property
    def fetcher(self) -> FeatureFetcher:
        """This process's fetch path.  A DataLoader worker forked from the loader's process
        inherits the fetcher's thread pool without its threads (work handed to it would never
        run), so a worker builds its own on first use."""
        if os.getpid() != self._pid:
            if self.device.type == "cuda":
                # CUDA cannot be used again in a forked child, and the parent's registration
                # of the table would look like an overlap to this process
                raise RuntimeError(
                    f"FolderFeatureStore(device={str(self.device)!r}) cannot fetch in a "
                    "DataLoader worker (a forked process cannot use CUDA): use num_workers=0 "
                    "with a CUDA store; the fetch itself runs on the GPU"
                )
            self._fetcher = build_fetcher(self._fetch_cfg, self.graph, self.device)
            self._pid = os.getpid()
        return self._fetcher

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_classes(self) -> int:
        return self.graph.num_classes

    def get_idx_split(self) -> dict[str, torch.Tensor]:
        """The folder's node splits as id tensors, ``{"train", "valid", "test"}`` (the keys of
        OGB's ``get_idx_split``)."""
        names = {"train": "train", "valid": "val", "test": "test"}
        return {
            key: torch.from_numpy(np.asarray(self.graph.splits[split], dtype=np.int64))
            for key, split in names.items()
        }

    # -- lookup
    def _table(self, attr: TensorAttr) -> tuple[torch.Tensor, bool]:
        """The tensor behind ``attr`` and whether it is the folder's feature table."""
        key = (attr.group_name, attr.attr_name)
        if key in self._memory:
            return self._memory[key], False
        if attr.group_name is None and attr.attr_name in self._folder:
            return self._folder[attr.attr_name], attr.attr_name == FEATURES
        have = sorted(name for group, name in self._keys() if group == attr.group_name)
        group = "" if attr.group_name is None else f" of group {attr.group_name!r}"
        raise KeyError(
            f"attribute {attr.attr_name!r}{group} is not in the feature store of "
            f"{self.graph.path}; it has {have}"
        )

    def _keys(self) -> list[tuple[str | None, str]]:
        return [(None, name) for name in self._folder] + [
            key for key in self._memory if key not in {(None, name) for name in self._folder}
        ]

    def _rows(self, table: torch.Tensor, is_features: bool, index: Any) -> torch.Tensor:
        if index is None or isinstance(index, slice):
            return table if index is None else table[index]
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().view(-1)
        if is_features:
            rows = self.fetcher.fetch(index)  # checks the ids (IndexError naming the first bad)
            if torch.utils.data.get_worker_info() is not None:
                # a worker's batch reaches the loader's process in shared memory, which the
                # fetcher's reused buffer would overwrite with the worker's next batch
                rows = rows.clone()
            return rows
        index = index.reshape(-1).long().cpu()
        check_indices(index, table.shape[0])
        return table[index].to(self.device, non_blocking=True)

    # -- FeatureStore interface
    def _get_tensor(self, attr: TensorAttr) -> torch.Tensor:
        table, is_features = self._table(attr)
        return self._rows(table, is_features, attr.index)

    def _multi_get_tensor(self, attrs: list[TensorAttr]) -> list[torch.Tensor]:
        """One batch's tensors: the feature rows first (the fetch path's gather, the long part),
        then the small ones, each exactly what :meth:`_get_tensor` returns for its attribute."""
        out: list[torch.Tensor | None] = [None] * len(attrs)
        order = sorted(range(len(attrs)), key=lambda i: attrs[i].attr_name != FEATURES)
        for i in order:
            out[i] = self._get_tensor(attrs[i])
        return out

    def _put_tensor(self, tensor: torch.Tensor | np.ndarray, attr: TensorAttr) -> bool:
        tensor = torch.as_tensor(tensor)
        key = (attr.group_name, attr.attr_name)
        index = attr.index
        if index is None or (isinstance(index, slice) and index == slice(None)):
            self._memory[key] = tensor
            return True
        if key not in self._memory:
            index = torch.as_tensor(index).reshape(-1)
            if not torch.equal(index.cpu(), torch.arange(tensor.shape[0])):
                raise ValueError(
                    f"put_tensor of {attr.attr_name!r} with an index writes rows of an "
                    "attribute held in memory; the graph folder's tables are read-only "
                    "(put the whole tensor with index=None to replace one in memory)"
                )
            self._memory[key] = tensor
            return True
        self._memory[key][index] = tensor
        return True

    def _remove_tensor(self, attr: TensorAttr) -> bool:
        key = (attr.group_name, attr.attr_name)
        if key in self._memory:
            del self._memory[key]
            return True
        if attr.group_name is None and attr.attr_name in self._folder:
            del self._folder[attr.attr_name]  # hidden from this store; the folder is unchanged
            return True
        return False

    def _get_tensor_size(self, attr: TensorAttr) -> tuple[int, ...] | None:
        try:
            table, _ = self._table(attr)
        except KeyError:
            return None
        if attr.index is None or isinstance(attr.index, slice):
            return tuple(table[attr.index if attr.index is not None else slice(None)].shape)
        return (int(torch.as_tensor(attr.index).numel()), *table.shape[1:])

    def get_all_tensor_attrs(self) -> list[TensorAttr]:
        return [TensorAttr(group_name=group, attr_name=name) for group, name in self._keys()]

    def close(self) -> None:
        """Release the fetch path's buffers (pinned or registered memory)."""
        self._fetcher.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.graph.path}, fetch={self._fetcher.mode}, "
            f"device={self.device})"
        )
