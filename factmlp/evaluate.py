"""Scoring a model on a fact set by dot-product decoding: argmax_j <g(k_i), v_j> must equal f(i)."""
from __future__ import annotations

import numpy as np
import torch

from factmlp.factsets import FactSet


def _as_tensor(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


@torch.no_grad()
def outputs(model: torch.nn.Module, keys: np.ndarray, chunk: int = 4096) -> torch.Tensor:
    """g(k_i) for every key, in the model's dtype, chunked to bound memory."""
    p = next(model.parameters())
    return torch.cat([model(_as_tensor(keys[i:i + chunk], p)) for i in range(0, len(keys), chunk)])


@torch.no_grad()
def margins(model: torch.nn.Module, factset: FactSet, chunk: int = 2048) -> np.ndarray:
    """γ_i = <ĝ_i, v_f(i)> − max_{j≠f(i)} <ĝ_i, v_j> with ĝ_i = g(k_i)/‖g(k_i)‖ (float64)."""
    values = torch.as_tensor(factset.values, dtype=torch.float64)
    mapping = torch.as_tensor(factset.mapping)
    out = []
    for start in range(0, factset.num_facts, chunk):
        g = outputs(model, factset.keys[start:start + chunk]).to("cpu", torch.float64)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
        scores = g @ values.T
        rows = torch.arange(len(g))
        right = scores[rows, mapping[start:start + chunk]]
        scores[rows, mapping[start:start + chunk]] = -torch.inf
        out.append(right - scores.max(dim=1).values)
    return torch.cat(out).numpy()


def evaluate(model: torch.nn.Module, factset: FactSet) -> dict:
    """Accuracy (a key counts as stored when its margin is positive) and the margin statistics."""
    gamma = margins(model, factset)
    return {
        "accuracy": float(np.mean(gamma > 0)),
        "margin_min": float(gamma.min()),
        "margin_mean": float(gamma.mean()),
    }
