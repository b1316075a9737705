"""Importing the authors' notebook weights: state dicts written here in their exact layouts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from drag.convert_checkpoint import convert, convert_files, main, resnet_feature_hw
from drag.errors import DragInputError, UserError
from drag.inference import load_trained
from trilab.checkpoint import read_checkpoint
from trilab.testing import RecordingLogger, RunsCodeWhenUnpickled

DRAG_DIR = Path(__file__).resolve().parents[1]


def authors_backbone(arch: str) -> nn.Module:
    """torchvision ResNet with avgpool and fc replaced by empty Sequential, as the notebook."""
    net = getattr(torchvision.models, arch)(weights=None)
    net.avgpool = nn.Sequential()
    net.fc = nn.Sequential()
    return net


class AuthorsCGL(nn.Module):
    def __init__(self, channels, groups):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels * groups // 2)
        self.fc2 = nn.Linear(channels * groups // 2, channels * groups)


class PyG1DenseGCNConv(nn.Module):
    """PyTorch Geometric 1.x layout: weight (in, out) used as x @ weight, then bias."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) / dim**0.5)
        self.bias = nn.Parameter(torch.randn(dim) * 0.1)


class AuthorsHead(nn.Module):
    def __init__(self, node_dim, groups, attn_dim, layout):
        super().__init__()
        self.fc1 = nn.Linear(node_dim, attn_dim)
        self.fc2 = nn.Linear(node_dim, attn_dim)
        self.fc3 = nn.Linear(node_dim, groups)
        self.fc_cls = nn.Linear(groups + 1, 2)
        self.mha = nn.Module()
        self.mha.output_linear = nn.Linear(groups, groups)
        self.mha.linear_layers = nn.ModuleList(nn.Linear(groups, groups) for _ in range(3))
        self.conv = nn.Conv2d(3, 3, 1)  # unused by their forward; must be ignored
        if layout == "pyg1":
            self.conv1, self.conv2 = PyG1DenseGCNConv(node_dim), PyG1DenseGCNConv(node_dim)
        else:
            from torch_geometric.nn import DenseGCNConv

            self.conv1, self.conv2 = (
                DenseGCNConv(node_dim, node_dim),
                DenseGCNConv(node_dim, node_dim),
            )
            for conv in (self.conv1, self.conv2):
                nn.init.normal_(conv.bias, std=0.1)


def gcn_weight_in_out(head_state, name):
    if f"{name}.weight" in head_state:
        return head_state[f"{name}.weight"]  # (in, out)
    return head_state[f"{name}.lin.weight"].T  # Linear's (out, in)


def reference_forward(features, cgl, head, groups):
    """The authors' computation (shared/papers/drag.md), written out from their state dicts."""
    batch, channels, height, width = features.shape
    pooled = features.mean(dim=(2, 3))
    hidden = torch.sigmoid(pooled @ cgl["fc1.weight"].T + cgl["fc1.bias"])
    weights = torch.sigmoid(hidden @ cgl["fc2.weight"].T + cgl["fc2.bias"])
    maps = []
    for k in range(groups):  # group k = outputs k*C .. (k+1)*C - 1
        w_k = weights[:, k * channels : (k + 1) * channels]
        maps.append((w_k[:, :, None, None] * features).mean(dim=1))
    x = torch.stack(maps, dim=1).flatten(2)  # B x K x HW

    def linear(name, value):
        return value @ head[f"{name}.weight"].T + head[f"{name}.bias"]

    q, k, v = linear("fc1", x), linear("fc2", x), linear("fc3", x)
    attn = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
    adjacency = linear("mha.output_linear", (attn @ v).transpose(1, 2))

    def dense_gcn(name, nodes):
        a = adjacency.clone()
        for i in range(groups):
            a[:, i, i] = 1.0
        d = a.sum(-1).clamp(min=1.0) ** -0.5
        a = d[:, :, None] * a * d[:, None, :]
        return a @ (nodes @ gcn_weight_in_out(head, name)) + head[f"{name}.bias"]

    out = torch.relu(dense_gcn("conv2", torch.relu(dense_gcn("conv1", x))))
    fused = torch.cat(
        [features.mean(dim=1, keepdim=True), out.view(batch, groups, height, width)], 1
    )
    return linear("fc_cls", fused.mean(dim=(2, 3)))


def authors_state_dicts(arch, groups, image_size, layout, attn_dim=8, seed=0):
    torch.manual_seed(seed)
    side = resnet_feature_hw(image_size)[0]
    backbone = authors_backbone(arch)
    channels = 512 if arch in ("resnet18", "resnet34") else 2048
    cgl = AuthorsCGL(channels, groups)
    head = AuthorsHead(side * side, groups, attn_dim, layout)
    return backbone.state_dict(), cgl.state_dict(), head.state_dict(), backbone


def _double(state: dict) -> dict:
    return {k: v.double() if v.is_floating_point() else v for k, v in state.items()}


@pytest.mark.parametrize("layout", ["pyg1", "pyg2"])
def test_converted_model_reproduces_the_authors_forward(layout):
    groups = 3
    backbone_sd, cgl_sd, head_sd, backbone = authors_state_dicts("resnet18", groups, 64, layout)
    assert not any(k.startswith("fc.") for k in backbone_sd)
    payload = convert(backbone_sd, cgl_sd, head_sd, groups, arch="resnet18", image_size=64)
    assert payload["extra"]["stage"] == "drag"
    assert payload["extra"]["model_config"]["feature_hw"] == [2, 2]
    from drag.model.backbone import Backbone
    from drag.model.drag import build_drag

    model = build_drag(Backbone("resnet18"), payload["extra"]["model_config"])
    model.load_state_dict(payload["model"])
    # float64: a ResNet-18 in fp32 rounds differently on different CPUs' kernels, equal
    # computations in float64 agree to ~1e-12
    model.eval().double()
    backbone.eval().double()
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        # the authors' backbone returns the flattened layer4 map (empty avgpool/fc)
        theirs = backbone(images).view(2, 512, 2, 2)
        torch.testing.assert_close(model.backbone.features(images), theirs, rtol=1e-10, atol=1e-12)
        features = torch.rand(2, 512, 2, 2, dtype=torch.float64) * 3
        expected = reference_forward(features, _double(cgl_sd), _double(head_sd), groups)
        got = model.forward_features(features)["logits"]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    cgl_sd, head_sd = _double(cgl_sd), _double(head_sd)
    # the check is sensitive to the group order and to the GCN weight orientation
    swapped = dict(cgl_sd)
    channels = 512
    for key in ("fc2.weight", "fc2.bias"):
        t = cgl_sd[key].clone()
        t[:channels], t[channels : 2 * channels] = (
            cgl_sd[key][channels : 2 * channels],
            cgl_sd[key][:channels],
        )
        swapped[key] = t
    assert not torch.allclose(reference_forward(features, swapped, head_sd, groups), expected)
    flipped = dict(head_sd)
    key = "conv1.weight" if layout == "pyg1" else "conv1.lin.weight"
    flipped[key] = head_sd[key].T
    assert not torch.allclose(reference_forward(features, cgl_sd, flipped, groups), expected)


def test_wrong_groups_and_unknown_keys_name_the_file_and_key(tmp_path):
    backbone_sd, cgl_sd, head_sd, _ = authors_state_dicts("resnet18", 2, 64, "pyg1")
    paths = {}
    for name, state in (("b", backbone_sd), ("c", cgl_sd), ("h", head_sd)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(state, paths[name])
    common = ["--backbone", str(paths["b"]), "--cgl", str(paths["c"]), "--head", str(paths["h"])]
    args = common + ["--arch", "resnet18", "--image-size", "64"]
    with pytest.raises(DragInputError, match=r"h\.pth.*'fc3'.*2 outputs.*--groups is 3"):
        main(args + ["--groups", "3", str(tmp_path / "out.pt")])
    with pytest.raises(DragInputError, match=r"h\.pth.*4-d nodes.*128 px"):
        main([*common, "--arch", "resnet18", "--image-size", "128", "--groups", "2", "x.pt"])
    torch.save({**head_sd, "surprise.weight": torch.zeros(1)}, paths["h"])
    with pytest.raises(DragInputError, match=r"h\.pth has keys .*surprise\.weight"):
        main(args + ["--groups", "2", str(tmp_path / "out.pt")])
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("which", ["backbone", "cgl", "head"])
def test_crafted_pickle_is_refused_before_it_runs(tmp_path, which):
    backbone_sd, cgl_sd, head_sd, _ = authors_state_dicts("resnet18", 2, 64, "pyg1")
    states = {"backbone": backbone_sd, "cgl": cgl_sd, "head": head_sd}
    marker = tmp_path / "marker"
    states[which] = {**states[which], "payload": RunsCodeWhenUnpickled(marker)}
    paths = {name: tmp_path / f"{name}_file.pth" for name in states}
    for name, state in states.items():
        torch.save(state, paths[name])
    with pytest.raises(UserError, match=rf"{which}_file\.pth.*refused"):
        convert_files(
            paths["backbone"], paths["cgl"], paths["head"], 2, tmp_path / "o.pt", "resnet18", 64
        )
    assert not marker.exists()


def test_converted_checkpoint_serves_predict_and_evaluate(
    tiny_synthetic, compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    backbone_sd, cgl_sd, head_sd, _ = authors_state_dicts("resnet18", 2, 64, "pyg2")
    paths = {}
    for name, state in (("b", backbone_sd), ("c", cgl_sd), ("h", head_sd)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(state, paths[name])
    out = convert_files(paths["b"], paths["c"], paths["h"], 2, tmp_path / "a.pt", "resnet18", 64)
    model, info = load_trained(out, torch.device("cpu"), ("drag",), "test")
    assert info["stage"] == "drag" and info["threshold"] is None
    assert "authors' notebook weights" in info["threshold_note"]

    from drag.predict import predict_folder

    log = RecordingLogger()
    summary = predict_folder(
        tiny_synthetic / "images" / "private", out, tmp_path / "p.csv", device="cpu", log=log
    )
    assert summary["images"] == 16 and summary["threshold"] == 0.5
    assert any("0.500" in line and "authors' notebook" in line for line in log.lines)

    from drag.evaluate import run as evaluate_run

    monkeypatch.chdir(tmp_path)
    evaluated = evaluate_run(compose_cfg(tiny_overrides(tiny_synthetic) + [f"checkpoint={out}"]))
    assert evaluated["kind"] == "drag" and 0 <= evaluated["test"]["accuracy"] <= 1


def _cli(args, env):
    return subprocess.run(
        [sys.executable, "-m", "drag.convert_checkpoint", *args],
        cwd=DRAG_DIR,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow  # ~15 s on 2 shared cores: a 170 MB ResNet-101 written, converted, read back
def test_cli_end_to_end_with_a_resnet101_state_dict(tmp_path):
    groups = 2
    backbone_sd, cgl_sd, head_sd, _ = authors_state_dicts("resnet101", groups, 448, "pyg1", 64)
    paths = {}
    for name, state in (("resnet", backbone_sd), ("cgl", cgl_sd), ("dgcn", head_sd)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(state, paths[name])
    out = tmp_path / "authors_drag.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    files = ["--cgl", str(paths["cgl"]), "--head", str(paths["dgcn"]), "--groups", str(groups)]
    done = _cli(["--backbone", str(paths["resnet"]), *files, str(out)], env)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    payload = read_checkpoint(out)  # what predict.py / evaluate.py read
    assert payload["extra"]["stage"] == "drag"
    config = payload["extra"]["model_config"]
    assert config["arch"] == "resnet101" and config["image_size"] == 448
    assert config["feature_hw"] == [14, 14] and config["groups"] == groups
    assert config["attn_dim"] == 64
    state = payload["model"]
    assert torch.equal(
        state["backbone.trunk.7.2.conv3.weight"], backbone_sd["layer4.2.conv3.weight"]
    )
    assert torch.equal(state["cgl.fc2.weight"], cgl_sd["fc2.weight"])
    assert torch.equal(state["gcn.conv2.lin.weight"], head_sd["conv2.weight"].T)
    assert torch.equal(state["adjacency.value.weight"], head_sd["fc3.weight"])

    bad = tmp_path / "bad.pth"
    torch.save({"x": RunsCodeWhenUnpickled(tmp_path / "marker")}, bad)
    refused = _cli(["--backbone", str(bad), *files, str(tmp_path / "x.pt")], env)
    assert refused.returncode == 2 and "bad.pth" in refused.stderr and "refused" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "marker").exists()
