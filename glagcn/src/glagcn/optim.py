"""The authors' optimisation recipe: Ranger (RAdam + Lookahead), cosine LR, BN momentum decay."""

from __future__ import annotations

import math

import torch
from torch import nn


class Lookahead:
    """Lookahead (k steps forward, 1 step back) around any optimiser.

    Every ``k`` steps of the inner optimiser the slow weights move ``alpha`` of the way to the
    fast weights and the fast weights restart from there.  LR schedulers act on ``inner``.
    """

    def __init__(self, inner: torch.optim.Optimizer, alpha: float = 0.5, k: int = 6) -> None:
        if not 0.0 < alpha <= 1.0 or k < 1:
            raise ValueError(f"Lookahead needs 0 < alpha <= 1 and k >= 1, got {alpha}, {k}")
        self.inner = inner
        self.alpha = alpha
        self.k = k
        self.fast_steps = 0
        self.slow = [p.detach().clone() for p in self._params()]

    def _params(self):
        return [p for group in self.inner.param_groups for p in group["params"]]

    @property
    def param_groups(self):
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.inner.step(closure)
        self.fast_steps += 1
        if self.fast_steps % self.k == 0:
            for slow, fast in zip(self.slow, self._params(), strict=True):
                slow.add_(fast - slow, alpha=self.alpha)
                fast.copy_(slow)
        return loss

    def state_dict(self) -> dict:
        return {
            "inner": self.inner.state_dict(),
            "slow": [s.clone() for s in self.slow],
            "fast_steps": self.fast_steps,
            "alpha": self.alpha,
            "k": self.k,
        }

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["inner"])
        for slow, saved in zip(self.slow, state["slow"], strict=True):
            slow.copy_(saved)
        self.fast_steps = int(state["fast_steps"])


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    betas=(0.95, 0.999),
    eps: float = 1e-5,
    lookahead_alpha: float = 0.5,
    lookahead_k: int = 6,
):
    """Returns (optimizer to step, optimizer the LR scheduler drives)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "ranger":
        inner = torch.optim.RAdam(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay
        )
        return Lookahead(inner, lookahead_alpha, lookahead_k), inner
    if name == "adam":
        inner = torch.optim.Adam(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay
        )
        return inner, inner
    if name == "adamw":
        inner = torch.optim.AdamW(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay
        )
        return inner, inner
    raise ValueError(f"unknown optimizer {name!r}: expected ranger, adam or adamw")


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, epochs: int, lr_min: float, gamma: float = 0.95
):
    """Per-epoch schedule: 'cosine' (to lr_min over the epochs, the authors' H36M runs) or
    'exponential' (x gamma each epoch, their 3DHP runs)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(epochs, 1), eta_min=lr_min
        )
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    raise ValueError(f"unknown lr schedule {name!r}: expected cosine or exponential")


def bn_momentum(epoch: int, epochs: int, start: float = 0.1, end: float = 0.001) -> float:
    """Geometric decay of BatchNorm momentum from ``start`` to ``end`` over training."""
    if epochs <= 1:
        return start
    return start * math.exp(math.log(end / start) * epoch / (epochs - 1))


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
