"""Run a command in a process group of its own, so that a time limit ends all of it.

A benchmark step may start children (a Hydra multirun's jobs, compile workers); killing only the
direct child would leave them holding the GPU and their pinned pages.  Each command therefore
starts a new session (its own process group), and when it runs out of time, or when it exits and
leaves children behind, the whole group gets SIGTERM and, after a grace period, SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

GRACE_S = 3.0
TAIL_LINES = 15


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member changed its credentials
        return True
    return True


def end_group(child: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM to the child's whole process group, then SIGKILL to whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            child.poll()  # reap the direct child, or it stays in the group as a zombie
            if not _group_alive(child.pid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def run_in_group(
    args: list[str], cwd: Path, env: dict[str, str], timeout_s: float, log: Path
) -> int | None:
    """Run ``args`` with its output in ``log``; the exit status, or None when it ran out of
    ``timeout_s`` and its process group was ended."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        code = None
        try:
            code = child.wait(timeout=max(timeout_s, 0.001))
        except subprocess.TimeoutExpired:
            pass
        finally:  # also when it exited, or we are stopped: no child of it may keep the GPU
            end_group(child)
    return code
