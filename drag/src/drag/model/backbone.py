"""torchvision ResNet backbones cut at layer4, with a 2-class head for the fine-tuning stage."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from drag.errors import DragInputError, MissingFileError

ARCHS = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
}


class Backbone(nn.Module):
    """ResNet trunk (conv1..layer4) plus a linear 2-class head used when fine-tuning alone."""

    def __init__(self, arch: str, pretrained: bool | str = False, num_classes: int = 2) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise DragInputError(f"unknown backbone {arch!r}; choose one of {sorted(ARCHS)}")
        self.arch = arch
        net = _make_resnet(arch, pretrained)
        self.trunk = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.channels = net.fc.in_features
        self.fc = nn.Linear(self.channels, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """layer4 map, C x H/32 x W/32."""
        return self.trunk(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images).mean(dim=(2, 3)))


def _make_resnet(arch: str, pretrained: bool | str) -> nn.Module:
    builder_name, weights_name = ARCHS[arch]
    builder = getattr(torchvision.models, builder_name)
    if pretrained is True or (isinstance(pretrained, str) and pretrained.lower() == "true"):
        # torchvision's weights API downloads to the torch hub cache on a user's machine
        weights = getattr(torchvision.models, weights_name).DEFAULT
        return builder(weights=weights)
    net = builder(weights=None)
    if pretrained in (False, None) or (
        isinstance(pretrained, str) and pretrained.lower() in ("false", "none", "")
    ):
        return net
    path = Path(str(pretrained))
    if not path.is_file():
        raise MissingFileError(f"backbone weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise DragInputError(
            f"{path} does not fit {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return net


def build_backbone(cfg) -> Backbone:
    return Backbone(cfg.arch, pretrained=cfg.pretrained)
