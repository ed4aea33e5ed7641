"""Adam, and AdamW's decoupled weight decay, over named tensors, as torch.optim computes it.

Hand-written for two reasons: torch.optim's first step spends seconds on lazy imports, which every
fresh sweep worker would pay; and the batched GD trainer drops finished models from the batch, so
it must cut the moments down with the weights (``moments``). The update is torch's foreach
implementation: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p(1 − lr·λ) − (lr/b1)·m/(√v/√b2 + ε)
with the bias corrections b_i = 1 − β_i^t.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch


class Adam:
    """Moments for each named tensor of ``params``; ``step`` applies one update in a few foreach kernels."""

    def __init__(self, params: dict[str, torch.Tensor], *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m1 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.m2 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.steps = 0

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: float) -> None:
        self.steps += 1
        b1, b2 = self.betas
        names = list(params)
        p, g = [params[k] for k in names], [grads[k] for k in names]
        m1, m2 = [self.m1[k] for k in names], [self.m2[k] for k in names]
        if self.weight_decay:
            torch._foreach_mul_(p, 1 - lr * self.weight_decay)
        torch._foreach_lerp_(m1, g, 1 - b1)
        torch._foreach_mul_(m2, b2)
        torch._foreach_addcmul_(m2, g, g, value=1 - b2)
        denom = torch._foreach_sqrt(m2)
        torch._foreach_div_(denom, math.sqrt(1 - b2 ** self.steps))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(p, m1, denom, value=-lr / (1 - b1 ** self.steps))

    def moments(self, change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> None:
        """Apply ``change`` to both moment dicts (the trainer keeps only the models still training)."""
        self.m1, self.m2 = change(self.m1), change(self.m2)
