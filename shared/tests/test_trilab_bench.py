import json

import pytest

from trilab.bench import (
    Column,
    Timing,
    add_ratio,
    command_line,
    describe,
    interleaved,
    load_script,
    machine,
    markdown_table,
    ratios,
    read_report,
    write_report,
)


class FakeClock:
    """Time moves only when a candidate says so: timings become exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float):
        def run() -> None:
            self.now += seconds

        return run


def test_interleaved_takes_turns_and_reports_medians():
    clock, calls, syncs = FakeClock(), [], []
    durations = {"slow": iter([9.0, 9.0, 3.0, 4.0, 5.0]), "fast": iter([9.0, 9.0, 1.0, 1.0, 2.0])}

    def candidate(name):
        def run():
            calls.append(name)
            clock.now += next(durations[name])

        return run

    timings = interleaved(
        {"slow": candidate("slow"), "fast": candidate("fast")},
        repeats=3,
        warmup=2,
        sync=lambda: syncs.append(clock.now),
        clock=clock,
        cpu_clock=None,
    )
    # warm-up rounds are not counted; the order is reversed every other round
    assert calls == ["slow", "fast", "fast", "slow", "slow", "fast", "fast", "slow", "slow", "fast"]
    assert timings["slow"].samples == [3.0, 4.0, 5.0]
    assert timings["fast"].samples == [1.0, 1.0, 2.0]
    assert timings["slow"].median == 4.0 and timings["fast"].median == 1.0
    assert timings["slow"].spread == pytest.approx(0.5)
    assert len(syncs) == 2 * len(calls)  # before the start and before the stop of each call
    assert ratios({k: t.median for k, t in timings.items()}, peer="slow") == {
        "slow": 1.0,
        "fast": 4.0,
    }


def test_sync_is_inside_the_timed_span():
    clock = FakeClock()
    pending = []

    def queue_work():
        pending.append(2.0)  # as a GPU kernel launch returns before the work is done

    def sync():
        while pending:
            clock.now += pending.pop()

    timing = interleaved(
        {"kernel": queue_work}, repeats=2, warmup=0, sync=sync, clock=clock, cpu_clock=None
    )["kernel"]
    assert timing.samples == [2.0, 2.0]


def test_cpu_clock_recorded_and_bad_repeats_refused():
    wall, cpu = FakeClock(), FakeClock()

    def work():
        wall.now += 2.0
        cpu.now += 1.0

    timing = interleaved({"a": work}, repeats=3, warmup=0, clock=wall, cpu_clock=cpu)["a"]
    assert timing.summary()["cpu_median"] == 1.0 and timing.median == 2.0
    assert timing.summary(scale=1000)["median"] == 2000.0
    with pytest.raises(ValueError, match="repeats"):
        interleaved({"a": work}, repeats=0)


def test_add_ratio_within_groups():
    rows = [
        {"size": 1, "mode": "memcpy", "s": 1.0},
        {"size": 1, "mode": "gather", "s": 4.0},
        {"size": 2, "mode": "memcpy", "s": 3.0},
        {"size": 2, "mode": "gather", "s": 6.0},
        {"size": 3, "mode": "gather", "s": 1.0},
    ]
    add_ratio(rows, "s", peer="memcpy", by="mode", out="of_memcpy", group=("size",))
    assert [r["of_memcpy"] for r in rows] == [1.0, 0.25, 1.0, 0.5, None]
    add_ratio(
        rows,
        "s",
        peer="memcpy",
        by="mode",
        out="rate_ratio",
        group=("size",),
        higher_is_better=True,
    )
    assert rows[1]["rate_ratio"] == 4.0
    zero = [{"mode": "memcpy", "s": 1.0}, {"mode": "gather", "s": 0.0}]
    assert add_ratio(zero, "s", peer="memcpy", by="mode", out="r")[1]["r"] is None


COLUMNS = [
    Column("size", "size"),
    Column("time at batch {batch} (ms)", "ms", "{:.1f}"),
    Column("both", value=lambda r: f"{r['ms']:.0f} ({r['batch']})"),
    Column("speed-up", "speedup", lambda v: f"**{v:.2f}x**"),
]


def test_markdown_from_the_column_spec():
    rows = [
        {"size": 27, "batch": 8, "ms": 12.345, "speedup": 2.0},
        {"size": 81, "batch": 8, "ms": 3.0, "speedup": None},
    ]
    assert markdown_table(rows, COLUMNS) == [
        "| size | time at batch 8 (ms) | both | speed-up |",
        "|---|---|---|---|",
        "| 27 | 12.3 | 12 (8) | **2.00x** |",
        "| 81 | 3.0 | 3 (8) | – |",
    ]


def test_write_report_json_round_trip_and_markdown(tmp_path):
    rows = [{"size": 27, "batch": 8, "ms": 12.345, "speedup": 2.0, "nested": {"a": [1, 2]}}]
    info = {
        "cpu": "Test CPU",
        "cores": 4,
        "usable_cores": 2,
        "torch_threads": 2,
        "load_average_1_5_15min": [1.0, 1.5, 2.25],
    }
    json_path, md_path = write_report(
        tmp_path / "sub" / "speed_cpu",
        rows,
        COLUMNS,
        "Speed",
        command="python bench.py --quick",
        info=info,
        notes=["A note."],
        extra={"rounds": 3},
    )
    assert json_path.name == "speed_cpu.json" and md_path.name == "speed_cpu.md"
    payload = read_report(tmp_path / "sub" / "speed_cpu")
    assert payload == json.loads(json_path.read_text())
    assert payload["rows"] == rows and payload["machine"] == info
    assert payload["command"] == "python bench.py --quick" and payload["rounds"] == 3
    text = md_path.read_text()
    assert text.startswith("# Speed\n\nCommand: `python bench.py --quick`")
    assert "Test CPU, 2 of 4 cores, torch threads: 2, load 2.2 (15 min)" in text
    assert "| 27 | 12.3 | 12 (8) | **2.00x** |" in text
    assert text.rstrip().endswith("A note.")


def test_machine_and_command_line():
    info = machine()
    assert info["cores"] >= 1 and info["usable_cores"] >= 1 and "numpy" in info
    assert describe(info)
    assert describe({**info, "gpu": "Some GPU"}).startswith("Some GPU (host: ")
    assert command_line(["--out", "a b"], script="x.py") == "python x.py --out 'a b'"


def test_load_script_by_path(tmp_path):
    script = tmp_path / "proj" / "benchmarks" / "speed.py"
    script.parent.mkdir(parents=True)
    script.write_text(
        "from dataclasses import dataclass\n@dataclass\nclass Row:\n    x: int\nVALUE = Row(3).x\n"
    )
    module = load_script(script)
    assert module.__name__ == "proj_benchmarks_speed" and module.VALUE == 3
    assert load_script(script) is module


def test_timing_summary_without_cpu_samples():
    assert Timing([1.0, 3.0]).summary()["cpu_median"] is None
