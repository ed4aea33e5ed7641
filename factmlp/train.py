"""Gradient-descent MLPs, the reference for what training reaches (SCIENCE.md §6).

``train_batched`` trains K models of different widths on one fact set at once: weights are padded
to the widest model and masked, and Adam runs per element, so each model follows exactly the path
it would follow alone while one batched kernel keeps a GPU or CPU core busy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from factmlp.factsets import FactSet
from factmlp.mlp import ACTIVATIONS, GatedMLP


@dataclass(frozen=True)
class TrainConfig:
    """The published recipe: Adam 1e-3, cosine to 1e-6 over 10k full-batch epochs, stop at loss 1e-7."""

    epochs: int = 10_000
    lr: float = 1e-3
    lr_min: float = 1e-6
    loss_stop: float = 1e-7
    check_every: int = 50
    activation: str = "bilinear"
    bias: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    device: str = "auto"

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def _init(d: int, widths: list[int], config: TrainConfig) -> list[GatedMLP]:
    """Each model's init depends only on (seed, width), so batched and alone start identically."""
    return [
        GatedMLP.random(d, m, activation=config.activation, bias=config.bias,
                        generator=torch.Generator().manual_seed(config.seed * 1_000_003 + m))
        for m in widths
    ]


def _stack(models: list[GatedMLP], width: int, device) -> dict[str, torch.Tensor]:
    """Pad every model to ``width`` hidden units with zeros and stack along a leading model axis."""
    def pad(t, dim):
        shape = list(t.shape)
        shape[dim] = width - shape[dim]
        return torch.cat([t.detach(), t.new_zeros(shape)], dim=dim)
    params = {
        "up": torch.stack([pad(m.up, 0) for m in models]),
        "gate": torch.stack([pad(m.gate, 0) for m in models]),
        "down": torch.stack([pad(m.down, 1) for m in models]),
    }
    if models[0].up_bias is not None:
        params["up_bias"] = torch.stack([pad(m.up_bias, 0) for m in models])
        params["gate_bias"] = torch.stack([pad(m.gate_bias, 0) for m in models])
        params["down_bias"] = torch.stack([m.down_bias.detach() for m in models])
    return {k: v.to(device).requires_grad_(True) for k, v in params.items()}


def _forward(p: dict[str, torch.Tensor], keys: torch.Tensor, mask: torch.Tensor, activation: str) -> torch.Tensor:
    """Outputs (K, F, d) of the K stacked models; masked hidden units contribute exactly zero."""
    u = torch.einsum("fd,kmd->kfm", keys, p["up"])
    g = torch.einsum("fd,kmd->kfm", keys, p["gate"])
    if "up_bias" in p:
        u = u + p["up_bias"][:, None, :]
        g = g + p["gate_bias"][:, None, :]
    h = u * ACTIVATIONS[activation](g) * mask[:, None, :]
    y = torch.einsum("kfm,kdm->kfd", h, p["down"])
    if "down_bias" in p:
        y = y + p["down_bias"][:, None, :]
    return y


def train_batched(factset: FactSet, widths: list[int], config: TrainConfig = TrainConfig()) -> list[dict]:
    """Train one model per width with cross-entropy over all values; return per-model results.

    Each result holds the trained ``model`` (on CPU), its final ``loss`` and ``epochs`` run.
    """
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be positive integers, got {widths}")
    device = config.torch_device()
    widest = max(widths)
    models = _init(factset.d, widths, config)
    p = _stack(models, widest, device)
    mask = (torch.arange(widest)[None, :] < torch.tensor(widths)[:, None]).float().to(device)
    keys = torch.as_tensor(factset.keys, dtype=torch.float32, device=device)
    values = torch.as_tensor(factset.values, dtype=torch.float32, device=device)
    targets = torch.as_tensor(factset.mapping, dtype=torch.long, device=device)
    moments = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in p.items()}
    active = torch.ones(len(widths), device=device)
    losses = torch.full((len(widths),), math.inf, device=device)
    epochs_run = torch.zeros(len(widths), dtype=torch.long)
    for step in range(config.epochs):
        lr = config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * step / config.epochs))
        logits = _forward(p, keys, mask, config.activation) @ values.T
        per_model = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.repeat(len(widths)), reduction="none"
        ).reshape(len(widths), -1).mean(dim=1)
        grads = torch.autograd.grad(per_model.sum(), list(p.values()))
        with torch.no_grad():
            losses = torch.where(active > 0, per_model.detach(), losses)
            epochs_run += active.cpu().long()
            bias1, bias2 = 1 - config.beta1 ** (step + 1), 1 - config.beta2 ** (step + 1)
            for (name, param), grad in zip(p.items(), grads):
                m1, m2 = moments[name]
                m1.mul_(config.beta1).add_(grad, alpha=1 - config.beta1)
                m2.mul_(config.beta2).addcmul_(grad, grad, value=1 - config.beta2)
                update = (m1 / bias1) / ((m2 / bias2).sqrt() + config.eps)
                param -= lr * update * active.view(-1, *[1] * (param.dim() - 1))
            if (step + 1) % config.check_every == 0:
                active = active * (losses > config.loss_stop).float()
                if not active.any():
                    break
    return [
        {"model": _unstack(p, k, m, config.activation), "loss": float(losses[k]), "epochs": int(epochs_run[k])}
        for k, m in enumerate(widths)
    ]


def _unstack(p: dict[str, torch.Tensor], k: int, width: int, activation: str) -> GatedMLP:
    take = {name: t[k].detach().cpu() for name, t in p.items()}
    biases = {}
    if "up_bias" in take:
        biases = dict(up_bias=take["up_bias"][:width], gate_bias=take["gate_bias"][:width], down_bias=take["down_bias"])
    return GatedMLP(take["up"][:width].clone(), take["gate"][:width].clone(), take["down"][:, :width].clone(),
                    activation=activation, **biases)


def train_gd(factset: FactSet, width: int, config: TrainConfig = TrainConfig()) -> GatedMLP:
    """Train a single gated MLP of the given width (the batched trainer with K = 1)."""
    return train_batched(factset, [width], config)[0]["model"]

