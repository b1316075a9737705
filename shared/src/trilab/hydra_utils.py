"""Helpers for Hydra entry points."""

from __future__ import annotations

from pathlib import Path


def run_dir() -> Path:
    """Output directory of the current Hydra run (``hydra.run.dir``); the cwd outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
