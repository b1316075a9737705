"""Channel Grouping Layer: per-image channel weights for K groups -> K region-aware maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelGrouping(nn.Module):
    """GAP(F) -> Linear(C, C*K/2) -> sigmoid -> Linear(C*K) -> sigmoid, reshaped to K x C."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.channels = channels
        self.groups = groups
        hidden = max(1, channels * groups // 2)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels * groups)

    def weight_logits(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return self.fc2(torch.sigmoid(self.fc1(pooled))).view(-1, self.groups, self.channels)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (region maps B x K x H x W, channel weights B x K x C)."""
        weights = torch.sigmoid(self.weight_logits(features))
        maps = torch.einsum("bkc,bchw->bkhw", weights, features) / self.channels
        return maps, weights


def membership_targets(assignment: torch.Tensor, groups: int) -> torch.Tensor:
    """One-hot K x C membership from a k-means assignment of the C channels."""
    return F.one_hot(assignment.long(), groups).T.float()


def cgl_pretrain_loss(
    weight_logits: torch.Tensor, membership: torch.Tensor, member_weight: float = 7 / 8
) -> torch.Tensor:
    """Weighted BCE pulling w[k, c] to 1 for channels of cluster k and to 0 for the others.

    The published notebook passes sigmoid outputs to a loss that expects logits, with the target
    coding inverted, which drives member channels towards 0; this is the intended behaviour.
    Members weigh ``member_weight`` (7/8) and non-members ``1 - member_weight`` (1/8).
    """
    target = membership.unsqueeze(0).expand_as(weight_logits)
    pos = torch.full_like(target, member_weight)
    neg = torch.full_like(target, 1.0 - member_weight)
    weight = torch.where(target > 0.5, pos, neg)
    return F.binary_cross_entropy_with_logits(weight_logits, target, weight=weight)
