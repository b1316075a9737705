"""What this machine offers: GPU, driver, CUDA, PCIe link, torch, CuPy and the dependencies.

Nothing here needs a GPU: on a CPU-only machine the probe says so and the check stops.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from gpucheck import nvsmi

# import name -> (distribution, what is lost without it)
DEPENDENCIES: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "every benchmark and GPU test skipped"),
    "pytest": ("pytest", "GPU tests not run"),
    "hypothesis": ("hypothesis", "zerocopy-gcn GPU test files cannot be collected"),
    "cupy": ("cupy", "zero-copy kernel figures, zero-copy epochs and zero-copy GPU tests skipped"),
    "hydra": ("hydra-core", "zerocopy-gcn epoch figures and GPU training tests skipped"),
    "omegaconf": ("omegaconf", "zerocopy-gcn epoch figures and GPU training tests skipped"),
    "yaml": ("PyYAML", "zerocopy-gcn epoch figures and GPU training tests skipped"),
    "torch_geometric": ("torch-geometric", "zerocopy-gcn figures and tests skipped (its models)"),
    "tqdm": ("tqdm", "zerocopy-gcn figures and tests skipped"),
    "scipy": ("scipy", "zerocopy-gcn hot-row cache (reverse PageRank) and DRAG figures skipped"),
    "sklearn": ("scikit-learn", "DRAG figures skipped (its clustering)"),
    "torchvision": ("torchvision", "DRAG figures skipped (its ResNet backbones)"),
    "matplotlib": ("matplotlib", "benchmark plots not drawn (the figures are still reported)"),
    "tensorboard": ("tensorboard", "not used by the check; train.py runs need tensorboard=false"),
}


@dataclass
class Dependency:
    module: str
    distribution: str
    present: bool
    version: str | None
    consequence: str


@dataclass
class Probe:
    python: str
    platform: str
    torch: str | None = None
    torch_cuda_build: str | None = None
    cuda_available: bool = False
    gpu_name: str | None = None
    gpu_memory_gib: float | None = None
    gpu_capability: str | None = None
    gpu_count: int = 0
    driver: str | None = None
    pcie: str | None = None
    nvidia_smi: list[dict[str, Any]] = field(default_factory=list)
    nvidia_smi_error: str | None = None
    cupy: str | None = None
    cuda_error: str | None = None
    dependencies: list[Dependency] = field(default_factory=list)

    @property
    def missing(self) -> dict[str, str]:
        """import name -> consequence, for every missing dependency."""
        return {d.module: d.consequence for d in self.dependencies if not d.present}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def no_gpu_line(self) -> str:
        """The one line printed on a machine without a usable CUDA GPU."""
        if self.torch is None:
            why = f"torch is not importable ({self.cuda_error})"
        elif self.torch_cuda_build is None:
            why = f"torch {self.torch} is a CPU-only build"
        else:
            why = f"torch {self.torch} (CUDA {self.torch_cuda_build}) sees no device" + (
                f": {self.cuda_error}" if self.cuda_error else ""
            )
        smi = self.nvidia_smi_error or f"nvidia-smi lists {len(self.nvidia_smi)} GPU(s)"
        return f"no CUDA GPU found ({why}; {smi}); run `make gpu-check` on a machine with one"


def _version(distribution: str, module: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        loaded = sys.modules.get(module)
        return getattr(loaded, "__version__", None)


def check_dependencies(find_spec=importlib.util.find_spec) -> list[Dependency]:
    found = []
    for module, (distribution, consequence) in DEPENDENCIES.items():
        try:
            present = find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        found.append(
            Dependency(
                module,
                distribution,
                present,
                _version(distribution, module) if present else None,
                consequence,
            )
        )
    return found


def probe(smi_query=nvsmi.query, find_spec=importlib.util.find_spec) -> Probe:
    result = Probe(
        python=platform.python_version(), platform=f"{platform.system()} {platform.machine()}"
    )
    result.nvidia_smi, result.nvidia_smi_error = smi_query()
    if result.nvidia_smi:
        first = result.nvidia_smi[0]
        result.driver = (
            None if first.get("driver_version") is None else str(first["driver_version"])
        )
        result.pcie = nvsmi.pcie_text(first)
    result.dependencies = check_dependencies(find_spec)
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - a broken torch install is reported, not raised
        result.cuda_error = f"{type(error).__name__}: {error}"
        return result
    result.torch = torch.__version__
    result.torch_cuda_build = torch.version.cuda
    try:
        result.cuda_available = bool(torch.cuda.is_available())
        if result.cuda_available:
            properties = torch.cuda.get_device_properties(0)
            result.gpu_count = torch.cuda.device_count()
            result.gpu_name = properties.name
            result.gpu_memory_gib = properties.total_memory / 2**30
            result.gpu_capability = f"{properties.major}.{properties.minor}"
    except Exception as error:  # noqa: BLE001 - e.g. driver too old for this torch build
        result.cuda_available = False
        result.cuda_error = f"{type(error).__name__}: {error}"
    if find_spec("cupy") is not None:
        try:
            import cupy

            result.cupy = cupy.__version__
        except Exception as error:  # noqa: BLE001 - a CuPy for another CUDA fails on import
            for dependency in result.dependencies:
                if dependency.module == "cupy":
                    dependency.present = False
                    dependency.consequence += f" (import failed: {error})"
    return result


def describe(found: Probe) -> list[str]:
    """The lines printed before anything runs."""
    lines = [
        f"GPU: {found.gpu_name} ({found.gpu_memory_gib:.1f} GiB, compute capability "
        f"{found.gpu_capability}; {found.gpu_count} device(s))",
        f"driver {found.driver or '?'}, CUDA (torch build) {found.torch_cuda_build}, "
        f"torch {found.torch}, CuPy {found.cupy or 'missing'}, Python {found.python}",
        f"link: {found.pcie or found.nvidia_smi_error or 'unknown'}",
    ]
    missing = [d for d in found.dependencies if not d.present]
    for dependency in missing:
        lines.append(f"{dependency.distribution} missing: {dependency.consequence}")
    if not missing:
        lines.append("all dependencies present")
    return lines
