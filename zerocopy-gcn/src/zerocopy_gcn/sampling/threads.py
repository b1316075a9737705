"""How many CPUs this process may use (the compiled sampler's default thread count)."""

from __future__ import annotations

import os


def default_num_threads() -> int:
    """The CPUs this process may run on (its affinity mask: what a container or taskset
    gives it, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
