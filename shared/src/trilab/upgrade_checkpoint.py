"""Convert a checkpoint written by an earlier version of this repository so that it loads with
``torch.load(weights_only=True)``.

Earlier versions stored NumPy's RNG state as a NumPy array, which the safe loader refuses.  This
command unpickles the old file *fully* (only run it on files you trust, such as your own runs),
rewrites that state as tensors and saves the checkpoint again, atomically:

    python -m trilab.upgrade_checkpoint OLD.pt [NEW.pt]     # NEW defaults to OLD (in place)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilab.checkpoint import atomic_save, read_checkpoint
from trilab.errors import UserError, report_user_errors


def _plain(value: Any) -> Any:
    """NumPy values as tensors or Python scalars, recursively."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def upgrade(payload: dict) -> dict:
    rng = payload.get("rng")
    if isinstance(rng, Mapping) and isinstance(rng.get("numpy"), tuple):
        name, key, pos, has_gauss, gauss = rng["numpy"]
        rng = dict(rng)
        rng["numpy"] = {"bit_generator": name, "key": torch.from_numpy(np.asarray(key, np.int64)),
                        "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}
        payload["rng"] = rng
    payload.setdefault("steps_into_next_epoch", 0)
    return _plain(payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?")
    args = parser.parse_args(argv)

    def run() -> None:
        if not args.old.is_file():
            raise UserError(f"checkpoint not found: {args.old}")
        print(f"unpickling {args.old} without restrictions (trusted files only)", file=sys.stderr)
        try:
            payload = torch.load(args.old, map_location="cpu", weights_only=False)
        except Exception as error:
            raise UserError(f"{args.old} is unreadable ({error})") from None
        if not isinstance(payload, dict) or "model" not in payload:
            raise UserError(f"{args.old} is not a checkpoint of this repository (no 'model' key)")
        target = args.new or args.old
        atomic_save(upgrade(payload), target)
        read_checkpoint(target)  # proves it now loads with weights_only=True
        print(f"wrote {target}")

    report_user_errors(run, program="upgrade_checkpoint")


if __name__ == "__main__":
    main()
