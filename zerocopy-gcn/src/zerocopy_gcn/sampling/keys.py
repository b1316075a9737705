"""The one rule that gives a batch its random stream: ``batch_key(seed, epoch, step, rank)``.

Every sampler draws a batch's neighbours from this key alone, so a batch is the same whatever
thread, order or sampler implementation produced it (prefetching and resuming stay
deterministic), and two ranks of a distributed run draw different neighbours for the same step.
The batch order itself is :func:`trilab.loop.epoch_order` (see :mod:`.batches`).
"""

from __future__ import annotations

_MASK64 = 0xFFFFFFFFFFFFFFFF
GOLDEN64 = 0x9E3779B97F4A7C15  # splitmix64's increment (2^64 / golden ratio)


def splitmix64(value: int) -> int:
    """splitmix64's finaliser of a Python int (mod 2^64): a bijection that spreads every input
    bit over the whole word, so nearby inputs (step 3, step 4) give unrelated keys."""
    z = (value + GOLDEN64) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def batch_key(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """64-bit key of one batch's random stream; equal inputs give the same batch.

    Each field is folded in through splitmix64 in turn, so fields cannot cancel each other as
    in a ``(seed * A + epoch) * A + step`` sum (seed 1 epoch 0 = seed 0 epoch A there).
    Negative values (evaluation uses ``epoch=-1``) wrap mod 2^64.
    """
    key = splitmix64(seed & _MASK64)
    for field in (rank, epoch, step):
        key = splitmix64(key ^ (field & _MASK64))
    return key


def hop_key(key: int, hop: int) -> int:
    """Key of hop ``hop``'s stream within batch ``key`` (the compiled sampler draws each hop,
    and each frontier position within it, from its own counter-based stream)."""
    return splitmix64(key ^ splitmix64(hop + 1))
