"""Device selection from a config string: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import torch

from trilab.errors import UserError


class DeviceError(UserError, RuntimeError):
    """The requested device does not exist on this machine."""


def select_device(name: str = "auto") -> torch.device:
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={name!r} was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "use device=cpu or device=auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device={name!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
        return device
    raise DeviceError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N")
