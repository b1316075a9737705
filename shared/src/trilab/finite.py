"""Stop a run whose loss stops being a number, before it checkpoints NaN weights."""

from __future__ import annotations

import torch

from trilab.errors import UserError


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite; no checkpoint was written after it."""


class FiniteLossGuard:
    """Watches each step's loss.

    On the CPU a non-finite loss raises at once.  On a GPU, reading the loss every step would
    make the host wait for the device, so the first bad step is recorded on the device and
    :meth:`check` (called every few steps and before any checkpoint) raises.
    """

    def __init__(self, device: torch.device | str, checkpoint_hint: str = "") -> None:
        self.device = torch.device(device)
        self.checkpoint_hint = checkpoint_hint
        self._first_bad = torch.full((2,), -1, dtype=torch.int64, device=self.device)
        self._bad_value = torch.zeros((), dtype=torch.float32, device=self.device)

    def _error(self, epoch: int, step: int, value: float) -> NonFiniteLossError:
        hint = f"; {self.checkpoint_hint}" if self.checkpoint_hint else ""
        return NonFiniteLossError(
            f"training loss is {value} at epoch {epoch} step {step}: stopped without writing a "
            f"checkpoint (check the input data for NaN/inf values, or lower the learning "
            f"rate){hint}"
        )

    def observe(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        loss = loss.detach()
        if loss.device.type == "cpu":
            if not bool(torch.isfinite(loss).all()):
                raise self._error(epoch, step, float(loss.float().reshape(-1)[0]))
            return
        bad = ~torch.isfinite(loss).all()
        fresh = bad & (self._first_bad[0] < 0)
        where = torch.tensor([epoch, step], dtype=torch.int64, device=loss.device)
        self._first_bad = torch.where(fresh, where, self._first_bad)
        self._bad_value = torch.where(fresh, loss.float().reshape(-1)[0], self._bad_value)

    def check(self) -> None:
        epoch, step = (int(v) for v in self._first_bad.tolist())
        if step >= 0 or epoch >= 0:
            raise self._error(epoch, step, float(self._bad_value))
