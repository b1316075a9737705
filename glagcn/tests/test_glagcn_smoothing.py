"""One-Euro smoothing: what it keeps (a still signal), what it removes (jitter), what it costs
(lag), uneven timestamps, missing joints, and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glagcn.metrics import mpjve as velocity_error
from glagcn.smoothing import OneEuroFilter, SmoothingError, mpjve, smooth_sequence
from trilab.errors import UserError

FPS = 50.0


def _noisy_sine(frames=500, joints=17, noise=2.0, seed=0):
    """A track of slow sines (0.5 Hz, 40 px) with Gaussian pixel noise: (noisy, clean)."""
    t = np.arange(frames) / FPS
    phase = np.linspace(0, np.pi, joints * 2).reshape(joints, 2)
    clean = 300 + 40 * np.sin(2 * np.pi * 0.5 * t[:, None, None] + phase)
    noisy = clean + np.random.default_rng(seed).normal(0, noise, clean.shape)
    return noisy, clean


def _lag_frames(filtered: np.ndarray, clean: np.ndarray, most: int = 20) -> int:
    """The delay (frames) that best aligns the filtered signal with the clean one."""
    errors = [
        np.abs(filtered[most + d :] - clean[most : len(clean) - d]).mean() for d in range(most)
    ]
    return int(np.argmin(errors))


def test_a_constant_signal_is_unchanged():
    frame = np.random.default_rng(1).uniform(0, 500, (17, 2))
    track = np.repeat(frame[None], 30, axis=0)
    np.testing.assert_array_equal(smooth_sequence(track, FPS, 1.0, 0.5), track)


def test_the_first_frame_passes_through_and_the_output_keeps_shape_and_dtype():
    smoother = OneEuroFilter()
    frame = np.arange(34, dtype=np.float32).reshape(17, 2)
    out = smoother(frame, 0.0)
    assert out.dtype == np.float32 and out.shape == (17, 2)
    np.testing.assert_array_equal(out, frame)


def test_a_noisy_sine_has_less_jitter_with_bounded_lag():
    noisy, clean = _noisy_sine(noise=5.0)
    smoothed = smooth_sequence(noisy, FPS, min_cutoff=1.0, beta=0.02)
    # jitter against the clean track's velocity: the noise's share drops to a third
    assert mpjve(smoothed, clean) < 0.35 * mpjve(noisy, clean)
    # and the positions are closer to the clean track than the noisy ones were
    assert np.abs(smoothed - clean)[25:].mean() < 0.85 * np.abs(noisy - clean)[25:].mean()
    # the price is lag: a few frames at 50 frames/s, not a smeared signal
    assert 0 < _lag_frames(smoothed, clean) <= 3


def test_a_higher_beta_lags_less_in_fast_motion():
    t = np.arange(300) / FPS
    fast = (200 * np.sin(2 * np.pi * 2.0 * t))[:, None, None]  # 2 Hz, up to 2500 px/s
    slow_adapting = smooth_sequence(fast, FPS, min_cutoff=0.5, beta=0.0)
    fast_adapting = smooth_sequence(fast, FPS, min_cutoff=0.5, beta=0.1)
    assert np.abs(fast_adapting - fast).mean() < 0.5 * np.abs(slow_adapting - fast).mean()


def test_the_filter_is_causal():
    noisy, _ = _noisy_sine(frames=100)
    changed = noisy.copy()
    changed[60:] += 50.0
    a = smooth_sequence(noisy, FPS, 1.0, 0.01)
    b = smooth_sequence(changed, FPS, 1.0, 0.01)
    np.testing.assert_array_equal(a[:60], b[:60])
    assert not np.allclose(a[60:], b[60:])


def test_one_step_matches_the_formula_of_the_paper():
    min_cutoff, beta, d_cutoff, dt = 1.5, 0.2, 2.0, 0.04
    smoother = OneEuroFilter(min_cutoff, beta, d_cutoff)
    smoother(np.array([10.0]), 0.0)
    out = smoother(np.array([13.0]), dt)

    def alpha(cutoff):
        tau = 1 / (2 * np.pi * cutoff)
        return 1 / (1 + tau / dt)

    speed = alpha(d_cutoff) * (3.0 / dt)  # filtered from the initial derivative 0
    expected = 10.0 + alpha(min_cutoff + beta * abs(speed)) * 3.0
    np.testing.assert_allclose(out, [expected], rtol=1e-12)


def test_uneven_timestamps_use_the_real_time_step():
    """Frames dropped from a 50 frames/s stream: filtering the frames that arrived at their
    real times equals filtering them at those times one by one, and differs from pretending they
    were evenly spaced."""
    noisy, _ = _noisy_sine(frames=200)
    kept = np.sort(np.random.default_rng(2).choice(200, 120, replace=False))
    times = kept / FPS
    uneven = smooth_sequence(noisy[kept], FPS, 1.0, 0.05, timestamps=times)
    smoother = OneEuroFilter(1.0, 0.05)
    one_by_one = np.stack([smoother(frame, t) for frame, t in zip(noisy[kept], times, strict=True)])
    np.testing.assert_array_equal(uneven, one_by_one)
    assert not np.allclose(uneven, smooth_sequence(noisy[kept], FPS, 1.0, 0.05))
    # doubling every gap is the same signal seen at half the frame rate: a larger alpha
    a = smooth_sequence(noisy[:3], FPS, 1.0, 0.0, timestamps=np.array([0.0, 0.02, 0.04]))
    b = smooth_sequence(noisy[:3], FPS, 1.0, 0.0, timestamps=np.array([0.0, 0.04, 0.08]))
    assert np.abs(b[1] - noisy[1]).mean() < np.abs(a[1] - noisy[1]).mean()


def test_timestamps_must_increase():
    smoother = OneEuroFilter()
    smoother(np.zeros(2), 1.0)
    with pytest.raises(SmoothingError, match="timestamps must increase"):
        smoother(np.zeros(2), 1.0)
    with pytest.raises(SmoothingError, match="timestamps must have shape"):
        smooth_sequence(np.zeros((3, 17, 2)), FPS, timestamps=np.zeros(2))


def test_a_missing_joint_passes_through_and_does_not_poison_later_frames():
    noisy, _ = _noisy_sine(frames=80)
    gappy = noisy.copy()
    gappy[30:40, 5] = np.nan  # joint 5 undetected for 10 frames
    gappy[50, :, 1] = np.nan  # one frame without any y
    out = smooth_sequence(gappy, FPS, 1.0, 0.05)
    assert np.isnan(out[30:40, 5]).all() and np.isnan(out[50, :, 1]).all()
    assert np.isfinite(np.delete(out[30:40], 5, axis=1)).all()
    missing = np.isnan(gappy)
    assert np.isfinite(out[~missing]).all()
    # the other joints are filtered exactly as without the gap
    reference = smooth_sequence(noisy, FPS, 1.0, 0.05)
    others = [j for j in range(17) if j != 5]
    np.testing.assert_array_equal(out[:50, others], reference[:50, others])
    # a joint that was never seen is taken as it is when it first appears
    late = noisy.copy()
    late[:10, 3] = np.nan
    np.testing.assert_array_equal(smooth_sequence(late, FPS)[10, 3], noisy[10, 3])


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        (dict(min_cutoff=0.0), "min_cutoff"),
        (dict(min_cutoff=-1.0), "min_cutoff"),
        (dict(min_cutoff=float("nan")), "min_cutoff"),
        (dict(d_cutoff=0), "d_cutoff"),
        (dict(beta=-0.1), "beta"),
        (dict(beta="fast"), "beta"),
    ],
)
def test_invalid_parameters_are_user_errors_naming_the_parameter(arguments, name):
    with pytest.raises(UserError, match=name):
        OneEuroFilter(**arguments)
    with pytest.raises(UserError, match=name):
        smooth_sequence(np.zeros((4, 17, 2)), FPS, **{"min_cutoff": 1.0, "beta": 0.0, **arguments})


def test_bad_arrays_and_rates_are_user_errors():
    with pytest.raises(UserError, match="fps"):
        smooth_sequence(np.zeros((4, 17, 2)), 0.0)
    with pytest.raises(UserError, match=r"shape \(T, J, C\)"):
        smooth_sequence(np.zeros((4, 34)), FPS)
    smoother = OneEuroFilter()
    smoother(np.zeros((17, 2)), 0.0)
    with pytest.raises(UserError, match="differs from the first frame"):
        smoother(np.zeros((17, 3)), 0.1)
    with pytest.raises(UserError, match="real numbers"):
        OneEuroFilter()(np.array(["a"]), 0.0)


def test_mpjve_without_and_with_a_reference():
    poses = np.zeros((3, 2, 3))
    poses[1, 0] = [3.0, 4.0, 0.0]  # joint 0 moves 5 and back 5; joint 1 stays
    assert mpjve(poses) == pytest.approx(2.5)
    reference = np.random.default_rng(0).normal(size=(6, 17, 3))
    predicted = reference + np.random.default_rng(1).normal(size=(6, 17, 3))
    assert mpjve(predicted, reference) == pytest.approx(velocity_error(predicted, reference))
    assert mpjve(reference, reference) == 0.0
    with_gap = predicted.copy()
    with_gap[2, 4] = np.nan  # the two steps touching frame 2 of joint 4 are left out
    steps = np.linalg.norm(np.diff(predicted, axis=0) - np.diff(reference, axis=0), axis=-1)
    keep = np.ones_like(steps, dtype=bool)
    keep[1:3, 4] = False
    assert mpjve(with_gap, reference) == pytest.approx(steps[keep].mean())
    assert np.isnan(mpjve(poses[:1]))
    with pytest.raises(UserError, match="must match"):
        mpjve(poses, reference)


@pytest.mark.slow
def test_the_smoothing_benchmark_writes_both_reports(tmp_path, tiny_lifter_checkpoint):
    from pathlib import Path

    from trilab.bench import load_script, read_report

    bench = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_smoothing.py")
    out = tmp_path / "report"
    threads = torch.get_num_threads()
    try:
        bench.main(
            ["--out", str(out), "--checkpoint", str(tiny_lifter_checkpoint), "--frames", "20"]
        )
    finally:
        torch.set_num_threads(threads)  # the benchmark runs on one thread
    smoothing = read_report(out / "smoothing")
    rows = {row["filter"]: row for row in smoothing["rows"]}
    assert len(rows) == len(bench.SETTINGS) + 1
    # the filter lowers the 2D jitter of the noisy track at every setting
    raw = rows["no filter"]["v2"]
    assert all(r["v2"] < raw for name, r in rows.items() if name.startswith("min_cutoff"))
    assert all(np.isfinite(r["v3"]) and np.isfinite(r["p3"]) for r in rows.values())
    fidelity = read_report(out / "bvh_fidelity")["rows"]
    exact = [r["max_deg"] for r in fidelity if r["girdle"] == "exact" or "other" in r["bone"]]
    assert len(fidelity) == 2 * 2 * 7 and max(exact) < 0.5
    assert (out / "smoothing.md").read_text().startswith("# One-Euro smoothing")
