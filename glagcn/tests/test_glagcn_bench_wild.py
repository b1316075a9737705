import json
from pathlib import Path

import pytest
import torch

import glagcn.detect
from trilab.bench import load_script

bench_wild = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_wild.py")
bench_detector, bench_lift = bench_wild.bench_detector, bench_wild.bench_lift
write_detector, write_lift = bench_wild.write_detector, bench_wild.write_lift


def test_bench_lift_times_a_track_file_end_to_end(tmp_path, tiny_lifter_config):
    row = bench_lift(30, 9, model_config=tiny_lifter_config)
    assert row["frames"] == 30 and row["receptive_field"] == 9
    assert row["lift_frames_per_s"] > 0 and row["end_to_end_frames_per_s"] > 0
    write_lift(tmp_path, row, "cmd")
    saved = json.loads((tmp_path / "lift_cpu.json").read_text())
    assert saved["flip_test"] is True and saved["command"] == "cmd"
    assert [stage["stage"] for stage in saved["rows"]][-1] == "end to end"
    assert saved["rows"][-1]["seconds"] == (row["read_track_s"] + row["prepare_s"] + row["lift_s"])
    assert "| lift | " in (tmp_path / "lift_cpu.md").read_text()
    assert "the 9-frame model" in (tmp_path / "lift_cpu.md").read_text()
    assert row["lift_cpu_s"] > 0 and "CPU-s per frame" in (tmp_path / "lift_cpu.md").read_text()


def test_bench_detector_rows_and_report(tmp_path, monkeypatch):
    built = []

    def fake_detector(weights, score_threshold, max_people, min_size, proposals):
        built.append((weights, score_threshold, max_people, min_size, proposals))

        def detect(images):  # keeps max_people boxes, as the untrained model does at threshold 0
            return [{"boxes": torch.zeros(max_people, 4)} for _ in images]

        return detect

    monkeypatch.setattr(glagcn.detect, "build_detector", fake_detector)
    rows = bench_detector([(64, 48)], people=[1, 3], batches=[1, 2], rounds=2, min_size=64)
    assert built == [("random", 0.0, 1, 64, 1000), ("random", 0.0, 3, 64, 1000)]
    assert [(r["boxes_kept"], r["batch"], r["frames_timed"]) for r in rows] == [
        (1, 1, 2),
        (1, 2, 4),
        (3, 1, 2),
        (3, 2, 4),
    ]
    write_detector(tmp_path, rows, "cmd")
    assert len(json.loads((tmp_path / "detector_cpu.json").read_text())["rows"]) == 4
    assert "| 64x48 | 64 | 3 | 2 |" in (tmp_path / "detector_cpu.md").read_text()


def test_bench_video_and_live_rows_and_reports(tmp_path):
    rows = bench_wild.bench_video(
        [(160, 120)], ["27c"], frames=6, rcnn_frames=1, detectors=("blazepose",)
    )
    by_kind = {row["detector"]: row for row in rows}
    measured = by_kind["blazepose"]
    assert measured["frames"] == 6 and measured["frames_with_person"] == 6
    assert measured["receptive_field"] == 27 and measured["causal"] is True
    # one after the other: detection, then lifting; end to end: as predict.py runs it, the
    # lifting overlapped with detection
    assert measured["sequential_frames_per_s"] == pytest.approx(
        6 / (measured["decode_detect_s"] + measured["read_smooth_lift_s"])
    )
    assert measured["end_to_end_frames_per_s"] == pytest.approx(6 / measured["overlapped_s"])
    assert by_kind["blazepose (predict() call)"]["end_to_end_frames_per_s"] > 0
    md = bench_wild.write_video(tmp_path, rows, "cmd")
    assert "| 160x120 | blazepose | 27 frames causal | 6 |" in md.read_text()
    live = bench_wild.bench_live((160, 120), ["27c"], frames=6)
    assert live[0]["delay_frames"] == 0 and live[0]["frames"] == 6
    assert live[0]["latency_ms_at_fps"] == pytest.approx(live[0]["processing_ms_median"])
    md = bench_wild.write_live(tmp_path, live, "cmd")
    assert json.loads((tmp_path / "live_cpu.json").read_text())["rows"][0]["causal"] is True
    assert "pose latency ms at 30 frames/s" in md.read_text()
