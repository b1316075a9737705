import pytest
import torch

from glagcn.convert_checkpoint import ConversionError, convert_file
from glagcn.model import GLAGCN
from glagcn.skeleton import H36M_17
from glagcn.training import model_from_checkpoint

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
    reference = GLAGCN(H36M_17, (3, 3), channels=16, output_layer="shared",
                       sequence_branch=False).eval()
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
    x = torch.randn(3, 9, 17, 2)
    torch.testing.assert_close(converted(x), reference(x))


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
