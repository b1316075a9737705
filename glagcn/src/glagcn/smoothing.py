"""One-Euro smoothing of keypoint tracks (Casiez, Roussel and Vogel, CHI 2012) and a jitter
measure.

The One-Euro filter is a first-order low-pass filter whose cutoff rises with speed:
``cutoff = min_cutoff + beta * |dx/dt|`` where the derivative is itself low-passed at
``d_cutoff``.  Slow motion is smoothed hard (little jitter), fast motion lightly (little lag).
Each smoothing factor comes from its cutoff and the real time step,
``alpha = 1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)``, so frames with uneven
timestamps (a live camera that drops frames) are filtered correctly.

As in the authors' reference implementation every scalar (each joint's x and y) is filtered on its
own.  The filter is causal: a frame's output depends only on it and earlier frames, so it adds no
latency to a live stream.  A missing value (NaN, e.g. an undetected joint) passes through as NaN
and leaves that value's state untouched: when the joint comes back it is filtered from its last
seen value and time, and it never turns later frames into NaN.
"""

from __future__ import annotations

import math

import numpy as np

from glagcn.metrics import mpjve as _velocity_error
from trilab.errors import UserError


class SmoothingError(UserError, ValueError):
    """A filter parameter, timestamp or array that the filter cannot use."""


def _positive(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SmoothingError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SmoothingError(f"{name} must be a positive number, got {value!r}")
    return number


def _non_negative(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SmoothingError(f"{name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise SmoothingError(f"{name} must be a number >= 0, got {value!r}")
    return number


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray | float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """A streaming One-Euro filter for frames of any fixed shape.

    ``min_cutoff`` (Hz) sets the smoothing of a still signal (lower: less jitter, more lag),
    ``beta`` (per unit of the signal's speed, e.g. 1/pixel) how fast the cutoff rises with
    speed (higher: less lag in fast motion), ``d_cutoff`` (Hz) the derivative's cutoff.
    Call it with each frame and its time in seconds; times must increase.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.007, d_cutoff: float = 1.0):
        self.min_cutoff = _positive(min_cutoff, "min_cutoff")
        self.beta = _non_negative(beta, "beta")
        self.d_cutoff = _positive(d_cutoff, "d_cutoff")
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next frame is taken as it is."""
        self._value: np.ndarray | None = None  # last filtered value of each scalar (NaN: unseen)
        self._speed: np.ndarray | None = None  # last filtered derivative of each scalar
        self._time: np.ndarray | None = None  # when each scalar was last seen
        self._last_call: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """The filtered frame ``x`` at time ``t`` (seconds), same shape; NaN stays NaN."""
        frame = np.asarray(x)
        if not np.issubdtype(frame.dtype, np.number) or np.iscomplexobj(frame):
            raise SmoothingError(f"a frame must hold real numbers, got dtype {frame.dtype}")
        values = frame.astype(np.float64)
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise SmoothingError(f"timestamp must be a number of seconds, got {t!r}") from None
        if not math.isfinite(t):
            raise SmoothingError(f"timestamp must be finite, got {t!r}")
        if self._last_call is not None and t <= self._last_call:
            raise SmoothingError(f"timestamps must increase: {t:g} s after {self._last_call:g} s")
        if self._value is None:
            self._value = np.full(values.shape, np.nan)
            self._speed = np.zeros(values.shape)
            self._time = np.full(values.shape, np.nan)
        elif values.shape != self._value.shape:
            raise SmoothingError(
                f"frame shape {values.shape} differs from the first frame's {self._value.shape}"
            )
        self._last_call = t
        seen = np.isfinite(values)
        first = seen & ~np.isfinite(self._value)  # first sight of this scalar: taken as is
        update = seen & ~first
        out = np.where(seen, values, np.nan)
        if update.any():
            dt = t - self._time[update]
            previous = self._value[update]
            speed = (values[update] - previous) / dt
            speed = self._speed[update] + _alpha(self.d_cutoff, dt) * (speed - self._speed[update])
            cutoff = self.min_cutoff + self.beta * np.abs(speed)
            filtered = previous + _alpha(cutoff, dt) * (values[update] - previous)
            self._speed[update] = speed
            self._value[update] = filtered
            out[update] = filtered
        self._value[first] = values[first]
        self._speed[first] = 0.0
        self._time[seen] = t
        return out.astype(np.result_type(frame.dtype, np.float32), copy=False)


def smooth_sequence(
    keypoints: np.ndarray,
    fps: float,
    min_cutoff: float = 1.0,
    beta: float = 0.007,
    d_cutoff: float = 1.0,
    *,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """One-Euro filter a whole track ``(T, J, C)`` frame by frame (causal), frames ``1/fps``
    seconds apart unless ``timestamps`` (seconds, increasing, length T) are given."""
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3:
        raise SmoothingError(f"keypoints must have shape (T, J, C), got {keypoints.shape}")
    if timestamps is None:
        times = np.arange(len(keypoints)) / _positive(fps, "fps")
    else:
        times = np.asarray(timestamps, dtype=np.float64)
        if times.shape != (len(keypoints),):
            raise SmoothingError(
                f"timestamps must have shape ({len(keypoints)},), got {times.shape}"
            )
    smoother = OneEuroFilter(min_cutoff, beta, d_cutoff)
    out = np.empty(keypoints.shape, dtype=np.result_type(keypoints.dtype, np.float32))
    for index, (frame, time) in enumerate(zip(keypoints, times, strict=True)):
        out[index] = smoother(frame, time)
    return out


def mpjve(poses: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Jitter of a track ``(T, J, C)`` in its own unit per frame.

    Without ``reference``: the mean norm of each joint's frame-to-frame displacement (how much
    the joints move per frame; noise adds to it).  With ``reference`` (the clean or ground-truth
    track, same shape): the mean per-joint velocity error of the lifting literature
    (VideoPose3D's MPJVE), the mean norm of the difference of the two first differences.
    Differences involving a NaN are left out; fewer than two frames give NaN.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3:
        raise SmoothingError(f"poses must have shape (T, J, C), got {poses.shape}")
    if reference is None:
        steps = np.linalg.norm(np.diff(poses, axis=0), axis=-1)
    else:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != poses.shape:
            raise SmoothingError(
                f"reference has shape {reference.shape}, poses {poses.shape}: they must match"
            )
        if np.isfinite(poses).all() and np.isfinite(reference).all():
            return _velocity_error(poses, reference)
        steps = np.linalg.norm(np.diff(poses, axis=0) - np.diff(reference, axis=0), axis=-1)
    finite = steps[np.isfinite(steps)]
    return float(finite.mean()) if finite.size else float("nan")
