import copy
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from glagcn.convert_checkpoint import ConversionError, convert_file
from glagcn.model import GLAGCN, model_from_checkpoint
from glagcn.model.authors_reference import (
    S_AGCN_H36M_PAIRS,
    authors_adjacency,
    authors_forward,
    random_authors_state_dict,
)
from glagcn.skeleton import H36M_17
from trilab.errors import UserError
from trilab.testing import write_crafted_torch_file

SUBSET_PARTS = {"theta": "conv_a", "phi": "conv_b", "project": "conv_d", "residual": "down"}


def _authors_names(model: GLAGCN) -> dict[str, torch.Tensor]:
    """The state dict the authors' module tree would hold for the same tensors."""
    theirs = {}
    for key, value in model.state_dict().items():
        if key.endswith("skeleton_adjacency"):
            continue
        parts = key.split(".")
        if parts[0] == "input_bn":
            name = "data_bn." + ".".join(parts[1:])
        elif parts[0] == "head":
            name = "fc." + parts[1]
            value = value.reshape(*value.shape, 1, 1) if parts[1] == "weight" else value
        else:
            if parts[0] == "expand":
                prefix, inner = "expand_gcn", parts[1:]
            else:  # levels.L.B
                prefix, inner = f"layers_tcngcn.{2 * int(parts[1]) + int(parts[2])}", parts[3:]
            if inner[0] == "gcn":
                if inner[1] == "learned_adjacency":
                    inner = ["gcn1", "PA"]
                else:
                    inner = ["gcn1", SUBSET_PARTS.get(inner[1], inner[1]), *inner[2:]]
            elif inner[0] == "tcn":
                inner = ["tcn1", *inner[1:]]
            name = prefix + "." + ".".join(inner)
        theirs[name] = value.clone()
    return theirs


def test_converted_authors_checkpoint_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    reference = GLAGCN(
        H36M_17, (3, 3), channels=16, output_layer="shared", sequence_branch=False
    ).eval()
    for name, tensor in reference.state_dict().items():  # non-trivial BN statistics
        if "running" in name:
            tensor.uniform_(0.5, 1.5)
    theirs = _authors_names(reference)
    assert "layers_tcngcn.3.tcn1.conv.weight" in theirs and "expand_gcn.gcn1.PA" in theirs
    source = tmp_path / "authors.bin"
    torch.save({"model_pos": theirs, "epoch": 79, "lr": 1e-5}, source)
    target = convert_file(source, tmp_path / "converted.pt")
    converted, extra = model_from_checkpoint(target, torch.device("cpu"))
    assert extra["model_config"]["output_layer"] == "shared"
    assert extra["model_config"]["receptive_field"] == 9
    # their main model unless --authors-model says otherwise; symmetric unless --causal
    assert extra["authors_model"] == "s_agcn" and not converted.causal
    assert converted.input_layout == "skeleton" and converted.input_bn is not None
    x = torch.randn(3, 9, 17, 2, dtype=torch.float64)
    torch.testing.assert_close(converted.double()(x), reference.double()(x), rtol=1e-10, atol=1e-12)


def test_unexpected_keys_and_shapes_are_refused(tmp_path):
    model = GLAGCN(H36M_17, (3, 3), channels=16, output_layer="shared", sequence_branch=False)
    theirs = _authors_names(model)
    bad = dict(theirs, **{"mystery.weight": torch.zeros(1)})
    torch.save({"model_pos": bad}, tmp_path / "a.bin")
    with pytest.raises(ConversionError, match="unexpected key 'mystery.weight'"):
        convert_file(tmp_path / "a.bin", tmp_path / "a.pt")
    wrong = dict(theirs)
    wrong["layers_tcngcn.0.tcn1.conv.bias"] = torch.zeros(5)
    torch.save({"model_pos": wrong}, tmp_path / "b.bin")
    with pytest.raises(ConversionError, match=r"levels.0.0.tcn.conv.bias: shape \(5,\)"):
        convert_file(tmp_path / "b.bin", tmp_path / "b.pt")
    torch.save({"state": theirs}, tmp_path / "c.bin")
    with pytest.raises(ConversionError, match="expected a dict with 'model_pos'"):
        convert_file(tmp_path / "c.bin", tmp_path / "c.pt")


# ---- proof against glagcn.model.authors_reference, their forward re-stated op by op ---------

WIDTHS = (3, 3, 3)


def _authors_model(window: torch.Tensor, params: dict) -> torch.Tensor:
    """Their S_AGCN forward (``authors_reference``) on the H36M graph, in ``window``'s dtype."""
    adjacency = authors_adjacency(S_AGCN_H36M_PAIRS, 17)
    return authors_forward(window, params, WIDTHS, adjacency)


def _authors_payload(theirs: dict) -> dict:
    """What their training script saves: epoch, lr, the data generator's NumPy RandomState,
    the Ranger optimizer's state dict and the model's."""
    parameters = [k for k, v in theirs.items() if v.is_floating_point() and "running" not in k]
    return {
        "epoch": 80,
        "lr": 1e-05,
        "random_state": np.random.RandomState(1234),
        "optimizer": {
            "state": {
                0: {
                    "step": 12,
                    "exp_avg": torch.zeros(3),
                    "exp_avg_sq": torch.zeros(3),
                    "slow_buffer": torch.zeros(3),
                }
            },
            "param_groups": [
                {
                    "lr": 1e-05,
                    "alpha": 0.5,
                    "k": 6,
                    "step_counter": 0,
                    "betas": (0.95, 0.999),
                    "N_sma_threshhold": 5,
                    "eps": 1e-05,
                    "weight_decay": 0,
                    "amsgrad": True,
                    "params": list(range(len(parameters))),
                }
            ],
        },
        "model_pos": OrderedDict(theirs),
    }


def _as(state: dict, dtype: torch.dtype) -> dict:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def _fp32_tolerance(expected: torch.Tensor, depth: int, reduction: int = 8 * 9 * 17) -> float:
    """Rounding bound for a float32 forward pass: per block, a reduction of ``reduction`` terms
    (channels x kernel x joints) loses about sqrt(reduction) ulps of the output's scale; 8x
    margin.  A different computation (another padding) is off by far more (checked below)."""
    per_block = reduction**0.5 * torch.finfo(torch.float32).eps
    return 8 * depth * per_block * float(expected.abs().max())


def test_converted_checkpoint_computes_what_the_authors_model_computes(tmp_path):
    theirs = random_authors_state_dict(8, WIDTHS, num_joints=17)
    source = tmp_path / "96_gt_27_supervised_epoch_80.bin"
    torch.save(_authors_payload(theirs), source)
    converted, extra = model_from_checkpoint(
        convert_file(source, tmp_path / "ours.pt"), torch.device("cpu")
    )
    assert extra["model_config"]["temporal_padding"] == "authors"
    assert converted.receptive_field == 27
    window = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(1))
    plain = {key.removeprefix("module."): value for key, value in theirs.items()}
    with torch.no_grad():
        # The proof is in float64, where equal computations agree to ~1e-12 whatever kernels
        # the CPU picks; float32 results of a 7-block stack differ by CPU (AVX-512 vs AVX2
        # reduction orders), so the float32 check below only bounds that rounding.
        expected64 = _authors_model(window.double(), _as(plain, torch.float64))
        torch.testing.assert_close(
            copy.deepcopy(converted).double()(window.double()), expected64, rtol=1e-10, atol=1e-12
        )
        expected = _authors_model(window, plain)
        torch.testing.assert_close(
            converted(window), expected, rtol=0, atol=_fp32_tolerance(expected, depth=7)
        )
        # the (k - s) / 2 padding sees other frames in every strided block: other outputs
        centred = GLAGCN(
            H36M_17,
            (3, 3, 3),
            channels=8,
            output_layer="shared",
            sequence_branch=False,
            temporal_padding="centred",
        ).eval()
        centred.load_state_dict(converted.state_dict())
        assert (centred(window) - expected).abs().max() > 1e-2


def test_a_pickle_that_would_run_code_is_refused_naming_the_file(tmp_path):
    marker = tmp_path / "marker"
    source = write_crafted_torch_file(tmp_path / "crafted.bin", marker, {"model_pos": {}})
    with pytest.raises(UserError, match=re.escape(str(source))):
        convert_file(source, tmp_path / "out.pt")
    assert not marker.exists()
    assert not (tmp_path / "out.pt").exists()
    torch.load(source, weights_only=False)  # the file is live: an unrestricted load runs it
    assert marker.exists()
