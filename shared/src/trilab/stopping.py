"""Graceful stops: SIGTERM (what schedulers and ``kill`` send) and SIGINT (Ctrl-C) become a
request that the training loop honours at its next step boundary.

The loop finishes the step it is in, writes a resumable checkpoint at that step (mid-epoch:
how far into the epoch it got), logs where it stopped and how to resume, and raises
:class:`~trilab.errors.RunStopped`, which the entry point turns into exit status 128 + signal.
A second Ctrl-C while the checkpoint is being written interrupts at once.

Under ``torchrun`` each rank receives the signal at a slightly different moment, so ranks agree
on a stop through an all-reduce every ``sync_every`` steps: every rank stops after the same step
and rank 0 writes the checkpoint.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import NoReturn

import torch
import torch.distributed as dist

from trilab.errors import RunStopped

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """Context manager that records SIGTERM/SIGINT instead of dying mid-step."""

    def __init__(self, ctx=None, sync_every: int = 10) -> None:
        self.ctx = ctx
        self.sync_every = max(int(sync_every), 1)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def distributed(self) -> bool:
        return bool(self.ctx is not None and self.ctx.is_distributed and dist.is_initialized())

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop waiting for the step to end
        self.signum = signum

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def requested(self, step: int, force: bool = False) -> bool:
        """Whether to stop after ``step`` (a running count, the same on every rank).

        Distributed runs agree every ``sync_every`` steps, or now with ``force``.
        """
        if not self.distributed:
            return self.signum is not None
        if step % self.sync_every and not force:
            return False
        device = self.ctx.device
        flag = torch.tensor([self.signum or 0], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        agreed = int(flag.item())
        if agreed and self.signum is None:
            self.signum = agreed
        return agreed != 0

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "no signal"

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    def stopped(self, where: str, checkpoint, resume_hint: str = "resume=true") -> RunStopped:
        """The exception to raise once the checkpoint at the stop is written (``None``: the
        work stopped needs none, it is redone or was complete)."""
        saved = f"checkpoint {checkpoint}" if checkpoint else "nothing to checkpoint"
        return RunStopped(
            f"stopped by {self.signal_name} {where}; {saved}; "
            f"continue with the same run directory and {resume_hint}",
            self.exit_code,
        )

    def halt(self, where: str, checkpoint, log) -> NoReturn:
        """Log where the run stopped and how to continue it, and raise :class:`RunStopped`."""
        saved = f"checkpoint {checkpoint}" if checkpoint else "nothing to checkpoint"
        log.info(
            f"{self.signal_name}: stopped {where}; {saved}; continue with the same "
            "hydra.run.dir and resume=true"
        )
        raise self.stopped(where, checkpoint)
