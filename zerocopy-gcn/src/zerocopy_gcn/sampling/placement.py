"""Where the sampler runs and which copy of the CSR it reads (config ``sample_on``)."""

from __future__ import annotations

import torch

from trilab.errors import UserError
from zerocopy_gcn.graph.csr import CSRGraph, numpy_to_tensor


def sampling_arrays(
    sample_on: str, graph: CSRGraph, device: torch.device
) -> tuple[torch.device, dict[str, torch.Tensor], list]:
    """Where the sampler runs and which CSR tensors it reads.

    ``cpu``: the memory-mapped arrays on the host; ``device``: copies in device memory;
    ``mapped``: the host arrays pinned in place and read by GPU ops over PCIe (GPU sampling
    for a CSR larger than device memory).
    """
    if sample_on == "cpu":
        return torch.device("cpu"), {}, []
    if sample_on == "device":
        return device, {}, []
    if sample_on == "mapped":
        if device.type != "cuda":
            raise UserError("sample_on=mapped needs a CUDA device")
        from zerocopy_gcn.fetch.zerocopy import HostRegistration, mapped_cuda_tensor

        registrations, csr = [], {}
        for name in ("indptr", "indices"):
            array = getattr(graph, name)
            registration = HostRegistration(
                numpy_to_tensor(array), read_only=not array.flags.writeable
            )
            registrations.append(registration)
            csr[name] = mapped_cuda_tensor(registration, device)
        return device, csr, registrations
    raise UserError(f"sample_on must be cpu, device or mapped, got {sample_on!r}")
