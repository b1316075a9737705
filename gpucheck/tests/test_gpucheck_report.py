"""The probe and the report writer on this (CPU) machine, the targets' arithmetic, the step
runner's skip rules and the offline wheel selection."""

import json
import sys
import time

import pytest

from gpucheck import benches, report, wheels
from gpucheck.benches import Step, StepResult
from gpucheck.probe import DEPENDENCIES, probe
from gpucheck.pytest_gate import Outcome


def test_probe_and_report_on_a_machine_without_gpu(tmp_path):
    found = probe(smi_query=lambda: ([], "nvidia-smi not found"))
    assert not found.cuda_available and found.torch
    assert found.no_gpu_line().startswith("no CUDA GPU found (")
    assert {d.module for d in found.dependencies} == set(DEPENDENCIES)
    skipped = [
        StepResult(s.name, "skipped", " ".join(s.args[1:]), reason="no CUDA GPU")
        for s in benches.steps(tmp_path / "work")
    ]
    md, js, targets = report.write_report(tmp_path, found, [], "not run", skipped, "make gpu-check")
    assert md.name == "no_gpu.md" and js.name == "no_gpu.json"
    assert targets and all(t.ok is None for t in targets)
    text = md.read_text()
    assert "no CUDA GPU found" in text and "not measured" in text and "| drag | skipped |" in text
    saved = json.loads(js.read_text())
    assert saved["probe"]["cuda_available"] is False
    assert {t["result"] for t in saved["targets"]} == {"not measured"}


def _gather(mode, dtype, row_bytes, gbps, offset=0):
    return {
        "mode": mode,
        "dtype": dtype,
        "row_bytes": row_bytes,
        "order": "random",
        "base_offset": offset,
        "gbps": gbps,
    }


def test_targets_are_judged_from_the_benchmark_json(tmp_path):
    gather = []
    for row_bytes, zero_copy in ((128, 10.0), (256, 45.0), (512, 40.0)):
        gather += [
            _gather("memcpy", "float32", row_bytes, 50.0),
            _gather("conventional", "float32", row_bytes, 20.0),
            _gather("zerocopy-aligned", "float32", row_bytes, zero_copy),
        ]
    epochs = [
        {
            "variant": v,
            "epoch_s": s,
            "sample_s": 0,
            "fetch_s": 0,
            "train_s": 0,
            "stall_s": 0,
            "cold": {"epoch_s": s},
        }
        for v, s in (
            ("gpu", 1.0),
            ("zerocopy", 1.2),
            ("gpu-prefetch", 1.0),
            ("zerocopy-prefetch", 1.5),
        )
    ]
    speed_report = tmp_path / "work" / "speed_cuda.md"
    speed_report.parent.mkdir()
    speed_report.write_text(
        "# GLA-GCN step speed\n\n| frames | speedup |\n|---|---|\n| 27 | 1.80 |\n"
    )
    results = [
        StepResult("zerocopy gather", "ok", "", data={"measurements": gather}),
        StepResult("zerocopy epochs", "ok", "", data={"rows": epochs}),
        StepResult(
            "drag",
            "ok",
            "",
            data={
                "rows": [
                    {
                        "arch": "resnet101",
                        "drag_overhead_pct": 4.0,
                        "backbone_images_per_s": 100.0,
                        "drag_images_per_s": 96.0,
                    }
                ]
            },
        ),
        StepResult(
            "glagcn fp32 eager",
            "ok",
            "",
            data={
                "rows": [
                    {
                        "receptive_field": 243,
                        "train_frames_per_s": 1000.0,
                        "infer_frames_per_s": 9000.0,
                    }
                ]
            },
        ),
        StepResult(
            benches.GLAGCN_SPEED_STEP,
            "ok",
            "",
            data={
                "rows": [
                    {
                        "receptive_field": frames,
                        "batch": batch,
                        "reference_step_ms": 10.0 * ratio,
                        "this_step_ms": 10.0,
                        "speedup": ratio,
                        "max_relative_difference": {
                            "eval_output": 3e-7,
                            "train_output": 4e-7,
                            "gradients_float64": 1e-15,
                        },
                    }
                    for frames, batch, ratio in ((27, 64, 1.8), (243, 512, 1.4))
                ]
            },
            reports=[str(speed_report)],
        ),
    ]
    targets = {t.figure: t for t in report.evaluate(results)}
    speed = [t for t in targets.values() if t.figure.startswith("GLA-GCN fp32 training step")]
    assert [t.ok for t in speed] == [False]
    assert "worst 1.40x (243 frames, batch 512); 1/2 cells hold" in speed[0].value
    memcpy = targets["aligned zero-copy / pinned H2D memcpy, rows >= 256 B"]
    assert memcpy.ok is False and "worst 80%" in memcpy.value and "1/2" in memcpy.value
    assert targets["aligned zero-copy / conventional path, rows >= 256 B"].ok is True
    assert targets["epoch zerocopy / gpu (all in GPU)"].ok is True
    assert targets["epoch zerocopy-prefetch / gpu-prefetch (all in GPU)"].ok is False
    assert targets["epoch zerocopy-cache / gpu (all in GPU)"].ok is None
    assert [t.ok for t in targets.values() if t.figure.startswith("DRAG")] == [True]
    found = probe(smi_query=lambda: ([], "nvidia-smi not found"))
    found.gpu_name = "NVIDIA H100 80GB HBM3"
    md, js, _ = report.write_report(
        tmp_path, found, [Outcome("t", "passed")], "", results, "make gpu-check"
    )
    assert md.name == "NVIDIA_H100_80GB_HBM3.md"
    # the projects' own reports are embedded (only --out comes back), headings moved down
    text = md.read_text()
    assert "### glagcn step vs the authors' form: `speed_cuda.md`" in text
    assert "### GLA-GCN step speed" in text and "| 27 | 1.80 |" in text
    saved = json.loads(js.read_text())
    step = next(s for s in saved["steps"] if s["name"] == benches.GLAGCN_SPEED_STEP)
    assert step["reports"] == ["speed_cuda.md"] and step["data"]["rows"][0]["speedup"] == 1.8
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "NVIDIA_H100_80GB_HBM3.json",
        "NVIDIA_H100_80GB_HBM3.md",
    ]


def test_steps_skip_for_missing_dependencies_and_spent_budget(tmp_path):
    script = (
        "import json, pathlib, sys; out = pathlib.Path(sys.argv[sys.argv.index('--out')"
        " + 1]); out.mkdir(parents=True, exist_ok=True); "
        "(out / 'r.json').write_text(json.dumps({'value': 7}))"
    )

    def step(name, code, needs=(), max_s=60, min_s=0):
        out = ["--out", str(tmp_path / benches.slug(name))]
        return Step(name, [sys.executable, "-c", code, *out], needs, max_s=max_s, min_s=min_s)

    plan = [
        step("writes json", script, ("numpy",)),
        step("needs cupy", "pass", ("cupy",)),
        step("fails", "raise SystemExit(3)"),
        step("past its cap", "import time; time.sleep(30)", max_s=0.5),
        step("too late", "pass", min_s=1e6),
    ]
    seen = []
    results = {
        r.name: r
        for r in benches.run_steps(
            plan,
            tmp_path,
            {},
            {"cupy": "..."},
            deadline=time.monotonic() + 120,
            log=lambda line: None,
            after_each=lambda so_far: seen.append([r.name for r in so_far]),
        )
    }
    assert results["writes json"].status == "ok" and results["writes json"].data == {"value": 7}
    assert results["needs cupy"].status == "skipped" and "cupy" in results["needs cupy"].reason
    assert results["fails"].status == "failed" and "exit 3" in results["fails"].reason
    assert results["past its cap"].status == "timeout" and results["past its cap"].seconds < 15
    assert results["too late"].status == "skipped" and "budget" in results["too late"].reason
    assert seen == [[s.name for s in plan[: i + 1]] for i in range(len(plan))]  # after each step


def test_offline_install_fills_gaps_and_keeps_compiled_packages(tmp_path):
    for name in (
        "omegaconf-2.3.1-py3-none-any.whl",
        "antlr4_python3_runtime-4.9.3-py3-none-any.whl",
        "scipy-1.17.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "tqdm-4.70.1-py3-none-any.whl",
        "pytest-9.2.0-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    machine = {
        "antlr4-python3-runtime": "4.13.2",
        "scipy": "1.10.0",
        "tqdm": "4.70.1",
        "pytest": "8.3.5",  # kept: the machine's plugins were installed for it
    }

    def present(distribution):
        if distribution not in machine:
            raise wheels.importlib.metadata.PackageNotFoundError(distribution)
        return machine[distribution]

    chosen = [p.name.split("-")[0] for p in wheels.to_install(tmp_path, present)]
    assert chosen == ["antlr4_python3_runtime", "omegaconf"]  # scipy and tqdm stay the machine's
    # a compiled wheel for another Python is left out (pip would refuse the whole install)
    (
        tmp_path / "xxhash-3.6.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ).write_bytes(b"")
    (
        tmp_path / "psutil-7.0.0-cp36-abi3-manylinux_2_12_x86_64.manylinux2010_x86_64.whl"
    ).write_bytes(b"")
    on_311 = frozenset(
        {"py3-none-any", "cp36-abi3-manylinux_2_12_x86_64", "cp311-cp311-manylinux_2_28_x86_64"}
    )
    chosen = [p.name.split("-")[0] for p in wheels.to_install(tmp_path, present, on_311)]
    assert chosen == ["antlr4_python3_runtime", "omegaconf", "psutil"]
    assert "py3-none-any" in wheels._supported_tags()
    pins = wheels.pinned_versions()
    assert pins["hydra-core"] == "1.3.8" and pins["torch-geometric"] == "2.8.1"
    assert wheels.wanted(pins, installed=lambda d: "0.0")["antlr4-python3-runtime"] == "0.0"


def test_every_step_names_a_script_and_options_it_declares(tmp_path):
    root = benches.Path(__file__).resolve().parents[2]
    for step in benches.steps(tmp_path / "work"):
        script = root / step.args[1]
        assert script.is_file(), step.name
        declared = script.read_text()
        if "graph_parser" in declared:
            declared += (script.parent / "bench_graphs.py").read_text()
        for option in (a for a in step.args[2:] if a.startswith("--")):
            assert f'"{option}"' in declared, f"{step.name}: {script.name} has no {option}"


def test_a_gpu_machine_whose_torch_sees_no_device_still_leaves_the_probe_report(
    tmp_path, monkeypatch, capsys
):
    """nvidia-smi lists a GPU but torch cannot use it (a driver or build mismatch): one line,
    exit 2, and the probe's report in OUT, so the lent run says why instead of nothing."""
    from gpucheck import cli

    row = {"name": "NVIDIA H100 80GB HBM3", "driver_version": "580.159.04"}
    monkeypatch.setattr(cli, "probe", lambda: probe(smi_query=lambda: ([row], None)))
    if cli.probe().cuda_available:
        pytest.skip("this machine has a usable CUDA device")
    assert cli.main(["--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().out.strip().startswith("no CUDA GPU found (")
    reports = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert any(name.endswith(".md") for name in reports), reports
    text = next((tmp_path / "out").glob("*.md")).read_text()
    assert "no usable CUDA device" in text
