"""The DRAG classifier: backbone -> CGL region maps -> attention graph -> GCN -> fusion -> head."""

from __future__ import annotations

import torch
from torch import nn

from drag.errors import DragInputError
from drag.model.backbone import Backbone
from drag.model.cgl import ChannelGrouping
from drag.model.gcn import AttentionAdjacency, RegionGCN


class DRAG(nn.Module):
    """Dynamic Region-Aware GCN.

    ``feature_hw`` is the layer4 map size (14 x 14 at 448 px); each region map flattened is a
    node vector of ``feature_hw[0] * feature_hw[1]`` entries (196 in the paper).
    """

    def __init__(
        self,
        backbone: Backbone,
        groups: int,
        feature_hw: tuple[int, int],
        attn_dim: int = 64,
        attn_dropout: float = 0.1,
        gcn_dropout: float = 0.5,
        num_classes: int = 2,
        gcn_dropout_at_eval: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.groups = groups
        self.feature_hw = tuple(feature_hw)
        node_dim = self.feature_hw[0] * self.feature_hw[1]
        self.cgl = ChannelGrouping(backbone.channels, groups)
        self.adjacency = AttentionAdjacency(node_dim, groups, attn_dim, attn_dropout)
        self.gcn = RegionGCN(node_dim, gcn_dropout, gcn_dropout_at_eval)
        self.head = nn.Linear(groups + 1, num_classes)
        # While True the backbone runs without gradients and with frozen BatchNorm statistics
        # (the paper freezes it for the first epochs of DRAG training and for CGL pretraining).
        self.freeze_backbone = False

    def train(self, mode: bool = True) -> DRAG:
        super().train(mode)
        if mode and self.freeze_backbone:
            self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone.features(images)
        return self.backbone.features(images)

    def forward_features(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, _, height, width = features.shape
        if (height, width) != self.feature_hw:
            raise DragInputError(
                f"feature map is {height}x{width} but the model was built for "
                f"{self.feature_hw[0]}x{self.feature_hw[1]}: check data.image_size"
            )
        region_maps, weights = self.cgl(features)
        nodes = region_maps.flatten(2)
        adjacency = self.adjacency(nodes)
        node_out = self.gcn(nodes, adjacency).view(batch, self.groups, height, width)
        global_map = features.mean(dim=1, keepdim=True)
        fused = torch.cat([global_map, node_out], dim=1)
        logits = self.head(fused.mean(dim=(2, 3)))
        return {
            "logits": logits,
            "region_maps": region_maps,
            "adjacency": adjacency,
            "channel_weights": weights,
        }

    def forward(self, images: torch.Tensor, output: str = "logits"):
        """``output``: "logits", "all" (dict of every intermediate) or "cgl_logits" (the channel
        weight logits used by CGL pretraining). One entry point so a DDP wrapper sees every use."""
        features = self.features(images)
        if output == "cgl_logits":
            return self.cgl.weight_logits(features)
        result = self.forward_features(features)
        return result if output == "all" else result["logits"]


def build_drag(backbone, config: dict) -> DRAG:
    """A DRAG model around ``backbone`` from the ``model_config`` stored in its checkpoints."""
    return DRAG(
        backbone,
        config["groups"],
        tuple(config["feature_hw"]),
        config["attn_dim"],
        config["attn_dropout"],
        config["gcn_dropout"],
        gcn_dropout_at_eval=bool(config.get("gcn_dropout_at_eval", False)),
    )
