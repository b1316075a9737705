import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glagcn.model import fused
from glagcn.model.frozen_reference import ReferenceGraphConv, compare_outputs, model_pair
from glagcn.model.layers import AdaptiveGraphConv, dropout_mask
from glagcn.skeleton import H36M_17
from trilab.testing import run_to_completion

BENCH_SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny shapes: two threads only add waiting (on a loaded machine, 100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("frames", "output_layer", "sequence_branch", "padding"),
    [
        (9, "shared", False, "authors"),
        (27, "per_joint", True, "authors"),
        (27, "shared", False, "centred"),
    ],
)
def test_fast_model_equals_the_frozen_reference_for_the_same_weights(
    frames, output_layer, sequence_branch, padding
):
    fast, reference = model_pair(
        frames,
        channels=16,
        output_layer=output_layer,
        sequence_branch=sequence_branch,
        dropout=0.0,
        temporal_padding=padding,
    )
    torch.manual_seed(3)
    windows = torch.randn(3, frames, 17, 2)
    differences = compare_outputs(fast, reference, windows, sequence=sequence_branch)
    # the proof is in float64; fp32 is only bounded (its rounding depends on the CPU)
    assert differences["eval_output_float64"] < 1e-12
    assert differences["train_output_float64"] < 1e-12
    assert differences["gradients_float64"] < 1e-12
    assert differences["eval_output"] < 1e-4 and differences["train_output"] < 1e-4
    # the check can fail: other weights give other outputs
    with torch.no_grad():
        reference.levels[0][0].gcn.project[1].weight.mul_(1.5)
    assert (
        compare_outputs(fast, reference, windows, sequence=sequence_branch)["eval_output_float64"]
        > 1e-3
    )


@pytest.mark.parametrize("frames", [3, 27])  # one batched GEMM / one GEMM per sample
def test_graph_unit_forms_agree_with_the_straightforward_one(frames):
    torch.manual_seed(0)
    adjacency = torch.from_numpy(H36M_17.adjacency_subsets())
    unit = AdaptiveGraphConv(16, 16, adjacency).double()
    reference = ReferenceGraphConv(16, 16, adjacency).double()
    with torch.no_grad():
        unit.learned_adjacency.normal_(0, 0.1)
    reference.load_state_dict(unit.state_dict())
    x = torch.randn(2, 16, frames, 17, dtype=torch.float64, requires_grad=True)
    gradient = torch.randn(2, 16, frames, 17, dtype=torch.float64)
    outputs = {}
    for name, run in {
        "reference": lambda: reference(x),
        "fused": lambda: unit(x),
        "operations": lambda: torch.relu(
            unit.bn(
                fused._project_then_mix_ops(x, *_fused_arguments(unit))
                + sum(conv.bias for conv in unit.project).view(1, -1, 1, 1)
            )
            + x
        ),
    }.items():
        x.grad = None
        unit.zero_grad()
        reference.zero_grad()
        out = run()
        out.backward(gradient)
        module = reference if name == "reference" else unit
        outputs[name] = (
            out.detach(),
            x.grad.clone(),
            {k: p.grad.clone() for k, p in module.named_parameters()},
        )
    for name in ("fused", "operations"):  # float64: equal computations agree to ~1e-12
        torch.testing.assert_close(
            outputs[name][0], outputs["reference"][0], rtol=1e-10, atol=1e-12
        )
        torch.testing.assert_close(
            outputs[name][1], outputs["reference"][1], rtol=1e-10, atol=1e-12
        )
        for key, grad in outputs["reference"][2].items():
            torch.testing.assert_close(
                outputs[name][2][key],
                grad,
                rtol=1e-10,
                atol=1e-12,
                msg=lambda m, key=key, name=name: f"{name} {key}: {m}",
            )


def _fused_arguments(unit: AdaptiveGraphConv):
    c = unit.theta[0].in_channels
    weight = torch.cat(
        [
            w.view(-1, c)
            for parts in zip(unit.theta, unit.phi, unit.project, strict=True)
            for w in (parts[0].weight, parts[1].weight, parts[2].weight)
        ]
    )
    bias = torch.cat(
        [
            b
            for parts in zip(unit.theta, unit.phi, strict=True)
            for b in (parts[0].bias, parts[1].bias)
        ]
    )
    adjacency = unit.skeleton_adjacency + unit.learned_adjacency
    return weight, bias, adjacency, unit.theta[0].out_channels, unit.project[0].out_channels


def test_dropout_keeps_each_value_with_probability_one_minus_p_and_rescales():
    torch.manual_seed(0)
    mask = dropout_mask(torch.empty(200_000), 0.25)
    torch.testing.assert_close(torch.unique(mask), torch.tensor([0.0, 1 / 0.75]))
    assert (mask == 0).float().mean().item() == pytest.approx(0.25, abs=0.005)
    assert torch.all(dropout_mask(torch.empty(10), 1.0) == 0)


def test_speed_report_is_written(tmp_path):
    run_to_completion(
        [sys.executable, str(BENCH_SPEED), "--out", str(tmp_path), "--threads", "1"]
        + ["--receptive-fields", "9", "--batches", "2", "--rounds", "1"]
    )
    row = json.loads((tmp_path / "speed_cpu_1thread.json").read_text())["rows"][0]
    assert row["batch"] == 2 and row["speedup"] > 0
    assert row["max_relative_difference"]["gradients_float64"] < 1e-10
    assert row["speedup"] == row["reference_step_ms"] / row["this_step_ms"]
    assert "| 9 | 2 |" in (tmp_path / "speed_cpu_1thread.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_gpu_rows_are_skipped_with_a_reason_without_cuda(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH_SPEED), "--device", "cuda", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "GPU rows skipped" in done.stdout, done.stderr[-2000:]
    assert not list(tmp_path.iterdir())
