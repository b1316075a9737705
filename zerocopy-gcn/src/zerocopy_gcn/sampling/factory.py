"""The sampler a config asks for: ``sampler.kind`` (auto, compiled, reference) on a device."""

from __future__ import annotations

import numpy as np
import torch

from trilab.errors import UserError
from zerocopy_gcn.graph.csr import CSRGraph
from zerocopy_gcn.sampling.base import BlockSampler
from zerocopy_gcn.sampling.reference import NeighborSampler

SAMPLER_KINDS = ("auto", "compiled", "reference")


def compiled_sampler_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def check_fanouts(fanouts: list[int]) -> None:
    """One fanout per layer, each -1 (every in-neighbour) or a count >= 0; anything else (an
    empty list, -2, 2.5, a string) is refused naming the list, before any sampling."""
    try:
        values = None if isinstance(fanouts, str | bytes) else list(fanouts)
    except TypeError:  # a single number
        values = None
    if not values or not all(
        isinstance(f, int | np.integer) and not isinstance(f, bool) and f >= -1 for f in values
    ):
        raise UserError(
            "fanouts must list one neighbour count per layer, each -1 (all in-neighbours) or "
            f"a whole number >= 0, got {fanouts!r}"
        )


def make_sampler(
    kind: str,
    graph: CSRGraph | None,
    fanouts: list[int],
    seed: int = 0,
    device: torch.device | str = "cpu",
    num_threads: int = 0,
    indptr: torch.Tensor | None = None,
    indices: torch.Tensor | None = None,
    rank: int = 0,
) -> BlockSampler:
    """The sampler for ``kind`` (config ``sampler.kind``) on ``device``.

    ``compiled``: :class:`~zerocopy_gcn.sampling.compiled.CompiledNeighborSampler` (CPU only,
    ``num_threads`` threads, 0 = the process's CPUs); ``reference``: :class:`NeighborSampler`
    (any device; the GPU-sampling path); ``auto``: compiled on the CPU where numba is
    installed, else the reference.  Either draws batch ``(epoch, step)`` of rank ``rank`` from
    :func:`~zerocopy_gcn.sampling.keys.batch_key` ``(seed, epoch, step, rank)``.
    """
    if kind not in SAMPLER_KINDS:
        raise UserError(f"sampler.kind must be one of {SAMPLER_KINDS}, got {kind!r}")
    check_fanouts(fanouts)
    on_cpu = torch.device(device).type == "cpu"
    if kind == "compiled" and not on_cpu:
        raise UserError(
            "sampler.kind=compiled samples on the CPU; sampling on the GPU "
            "(sample_on=device|mapped) uses the reference: sampler.kind=auto"
        )
    if kind == "compiled" and not compiled_sampler_available():
        raise UserError(
            "sampler.kind=compiled needs numba (pip install -r requirements.txt), "
            "or use sampler.kind=reference"
        )
    if kind == "reference" or not on_cpu or not compiled_sampler_available():
        return NeighborSampler(
            graph, fanouts, seed=seed, device=device, indptr=indptr, indices=indices, rank=rank
        )
    from zerocopy_gcn.sampling.compiled import CompiledNeighborSampler  # needs numba

    return CompiledNeighborSampler(
        graph,
        fanouts,
        seed=seed,
        num_threads=num_threads,
        indptr=indptr,
        indices=indices,
        rank=rank,
    )
