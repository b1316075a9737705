"""Seeded, streaming R-MAT graph generator with a learnable node-classification task.

Edges: R-MAT (Chakrabarti et al.) quadrant recursion with probabilities (a, b, c, d), generated
in chunks from ``np.random.default_rng([seed, chunk])`` so a chunk can be regenerated exactly
for the builder's second pass instead of being stored; node ids are then shuffled by a seeded
permutation so hubs are spread over the id range.  Edges are symmetrised, de-duplicated and
self loops dropped, so the stored edge count ends a little below the target (R-MAT repeats
edges between hubs).

Task: every node has a latent vector z (``latent_dim``); its class is
``argmax(P^T (z_v + sum_{u in N(v)} z_u / sqrt(deg v)))`` with random class prototypes P, so
the label depends on the node *and* its neighbourhood; features are ``z W + noise``.  A model
that aggregates neighbours can therefore beat one that reads the node's own row alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zerocopy_gcn.graph.build import build_csr, reserve_file, row_blocks
from zerocopy_gcn.graph.csr import FEAT_DTYPES, load_graph, write_meta


@dataclass(frozen=True)
class RMatSpec:
    num_nodes: int
    num_edges: int  # stored (directed) edges before de-duplication; half are generated pairs
    feat_dim: int
    num_classes: int
    feat_dtype: str = "float32"
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    a: float = 0.57
    b: float = 0.19
    c: float = 0.19
    latent_dim: int = 16
    feature_noise: float = 1.0
    seed: int = 0
    chunk_pairs: int = 1 << 22


# Shapes of the paper's datasets (nodes, stored edges, feature width, classes, split fractions).
PRESETS: dict[str, RMatSpec] = {
    "reddit_like": RMatSpec(232_965, 114_615_892, 602, 41, split=(0.66, 0.10, 0.24)),
    "products_like": RMatSpec(2_449_029, 123_718_280, 100, 47, split=(0.08, 0.016, 0.904)),
    "papers_like_small": RMatSpec(10_000_000, 250_000_000, 128, 172, split=(0.011, 0.0011, 0.0019)),
}


def preset_spec(
    name: str, num_nodes: int | None = None, avg_degree: float | None = None, **overrides
) -> RMatSpec:
    """A preset, optionally shrunk: ``num_nodes`` scales the edges to keep the average degree."""
    if name not in PRESETS:
        raise KeyError(f"unknown graph preset {name!r}; choose one of {sorted(PRESETS)}")
    spec = PRESETS[name]
    degree = avg_degree if avg_degree is not None else spec.num_edges / spec.num_nodes
    nodes = int(num_nodes) if num_nodes is not None else spec.num_nodes
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "split" in overrides:
        overrides["split"] = tuple(overrides["split"])
    return replace(spec, num_nodes=nodes, num_edges=int(round(nodes * degree)), **overrides)


def rmat_pairs(spec: RMatSpec, chunk: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` R-MAT (src, dst) pairs of chunk number ``chunk`` (before the id permutation)."""
    rng = np.random.default_rng([spec.seed, 1, chunk])
    scale = max(1, math.ceil(math.log2(spec.num_nodes)))
    ab, abc = spec.a + spec.b, spec.a + spec.b + spec.c
    src_parts, dst_parts, have = [], [], 0
    while have < count:
        want = int((count - have) * 1.1) + 16  # ids >= num_nodes are rejected below
        src = np.zeros(want, dtype=np.int64)
        dst = np.zeros(want, dtype=np.int64)
        for _ in range(scale):
            r = rng.random(want, dtype=np.float32)
            src <<= 1
            dst <<= 1
            src += r >= ab
            dst += ((r >= spec.a) & (r < ab)) | (r >= abc)
        keep = (src < spec.num_nodes) & (dst < spec.num_nodes)
        src_parts.append(src[keep])
        dst_parts.append(dst[keep])
        have += int(keep.sum())
    return np.concatenate(src_parts)[:count], np.concatenate(dst_parts)[:count]


def _edge_chunks(spec: RMatSpec, perm: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    pairs = spec.num_edges // 2
    for chunk, start in enumerate(range(0, pairs, spec.chunk_pairs)):
        src, dst = rmat_pairs(spec, chunk, min(spec.chunk_pairs, pairs - start))
        yield perm[src], perm[dst]


def _to_storage(block: np.ndarray, feat_dtype: str) -> np.ndarray:
    if feat_dtype == "bfloat16":
        import torch

        return torch.from_numpy(block).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return block.astype(FEAT_DTYPES[feat_dtype])


def generate_rmat(
    folder: str | Path, spec: RMatSpec, name: str = "rmat", progress: bool = True
) -> Path:
    """Write a complete graph folder for ``spec``; memory stays O(nodes * latent_dim + chunk)."""
    import torch  # here, not at module level: the converters and loaders run without it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = spec.num_nodes
    perm = np.random.default_rng([spec.seed, 0]).permutation(n)
    num_chunks = max(1, math.ceil((spec.num_edges // 2) / spec.chunk_pairs))
    num_edges, degrees = build_csr(
        folder,
        n,
        partial(_edge_chunks, spec, perm),
        symmetric=True,
        dedupe=True,
        drop_self_loops=True,
        source=f"rmat(seed={spec.seed})",
        progress=progress,
        total_chunks=num_chunks,
    )
    rng = np.random.default_rng([spec.seed, 2])
    latent = rng.standard_normal((n, spec.latent_dim), dtype=np.float32)
    prototypes = rng.standard_normal((spec.latent_dim, spec.num_classes))
    # unit-norm class directions: no class wins the argmax just by a longer prototype
    prototypes = (prototypes / np.linalg.norm(prototypes, axis=0, keepdims=True)).astype(np.float32)
    mixing = (
        rng.standard_normal((spec.latent_dim, spec.feat_dim)) / math.sqrt(spec.latent_dim)
    ).astype(np.float32)
    indptr = np.load(folder / "indptr.npy", mmap_mode="r")
    indices = np.load(folder / "indices.npy", mmap_mode="r")
    label = np.empty(n, dtype=np.int64)
    latent_t = torch.from_numpy(latent)
    for start, stop in tqdm(
        list(row_blocks(indptr, 1 << 21)),
        desc="labels (neighbourhood)",
        disable=not progress,
        unit="block",
    ):
        seg = np.asarray(indices[indptr[start] : indptr[stop]], dtype=np.int64)
        deg = np.diff(indptr[start : stop + 1])
        rows = torch.from_numpy(np.repeat(np.arange(stop - start), deg))
        sums = torch.zeros(stop - start, spec.latent_dim)
        sums.index_add_(0, rows, latent_t[torch.from_numpy(seg)])
        scale = torch.from_numpy(1.0 / np.sqrt(np.maximum(deg, 1))).float()[:, None]
        mixed = latent_t[start:stop] + sums * scale
        label[start:stop] = (mixed @ torch.from_numpy(prototypes)).argmax(1).numpy()
    feat = np.lib.format.open_memmap(
        folder / "feat.npy", mode="w+", dtype=FEAT_DTYPES[spec.feat_dtype], shape=(n, spec.feat_dim)
    )
    reserve_file(folder / "feat.npy")
    rows_per_block = max(1, (1 << 24) // max(spec.feat_dim, 1))
    for start in tqdm(
        range(0, n, rows_per_block), desc="features", disable=not progress, unit="block"
    ):
        stop = min(n, start + rows_per_block)
        noise_rng = np.random.default_rng([spec.seed, 3, start])
        block = latent[start:stop] @ mixing
        block += spec.feature_noise * noise_rng.standard_normal(block.shape, dtype=np.float32)
        feat[start:stop] = _to_storage(block, spec.feat_dtype)
    feat.flush()
    del feat
    order = np.random.default_rng([spec.seed, 4]).permutation(n)
    n_train = int(round(spec.split[0] * n))
    n_val = int(round(spec.split[1] * n))
    n_test = min(n - n_train - n_val, int(round(spec.split[2] * n)))
    np.save(folder / "label.npy", label)
    np.save(folder / "train_idx.npy", np.sort(order[:n_train]))
    np.save(folder / "val_idx.npy", np.sort(order[n_train : n_train + n_val]))
    np.save(folder / "test_idx.npy", np.sort(order[n_train + n_val : n_train + n_val + n_test]))
    spec_record = asdict(spec)
    spec_record["split"] = list(spec.split)
    write_meta(
        folder,
        num_nodes=n,
        num_edges=num_edges,
        feat_dim=spec.feat_dim,
        feat_dtype=spec.feat_dtype,
        num_classes=spec.num_classes,
        name=name,
        generator={"kind": "rmat", **spec_record},
        max_degree=int(degrees.max(initial=0)),
    )
    return folder


def ensure_rmat(
    folder: str | Path, spec: RMatSpec, name: str = "rmat", progress: bool = True
) -> Path:
    """Generate ``folder`` unless it already holds a graph made from the same spec."""
    folder = Path(folder)
    meta = folder / "meta.json"
    if meta.is_file():
        graph = load_graph(folder, validate="cheap")
        recorded = graph.meta.get("generator", {})
        wanted = asdict(spec)
        wanted["split"] = list(spec.split)
        if recorded == {"kind": "rmat", **wanted}:
            return folder
    return generate_rmat(folder, spec, name=name, progress=progress)
