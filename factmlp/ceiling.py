"""The capacity ceiling of the bilinear gated MLP: facts no width can store (docs/science.md#model-class-ceiling).

With σ(z) = z every hidden unit is a product of two linear forms of the key, so the whole MLP is
y = W φ(x): φ(x) the p = d(d+1)/2 monomials x_a·x_b (a ≤ b) — with biases, the (d+1)(d+2)/2
monomials of degree ≤ 2 — and W a d×p matrix. Any W is reached at width p (the rank-one symmetric
products span the symmetric matrices), so width past p adds nothing: the search plateaus there.
silu and relu gates have no such ceiling (they are not polynomials of fixed degree).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP

# Cover's capacity of a linear classifier on p features is 2p random labels. Measured with
# ``class_accuracy`` (the convex fit of the whole class) on spherical fact sets the bilinear class stores
# F = 64 at d = 8 (p = 36), F = 256 but not 320 at d = 16 (p = 136); the reference's GD stores F = 1024
# at d = 32 (p = 528). Beyond ESTIMATE_PER_FEATURE · p facts a plan warns (an estimate, not a theorem).
ESTIMATE_PER_FEATURE = 2


def feature_count(d: int, bias: bool = False) -> int:
    """p: the monomials of degree 2 in d variables (of degree ≤ 2 with biases)."""
    return (d + 1) * (d + 2) // 2 if bias else d * (d + 1) // 2


def width_ceiling(activation: str, d: int, bias: bool = False) -> int | None:
    """The width past which the model class grows no more (None: no ceiling for this activation)."""
    return feature_count(d, bias) if activation == "bilinear" else None


def estimated_capacity(d: int, bias: bool = False) -> int:
    """The most facts the bilinear class stores at any width, estimated as 2p (see the module constant)."""
    return ESTIMATE_PER_FEATURE * feature_count(d, bias)


def counting_limit(d: int, bias: bool = False) -> int:
    """The largest F at which the bilinear class can realise at least half of the F! permutations.

    A proof, loose: decoding argmax_j <W φ(k_i), v_j> is fixed by the signs of K = F·F(F−1)/2 linear
    forms of W ∈ R^N (N = d·p), whose hyperplanes cut R^N into at most 2·(e·K/N)^N cells; a cell gives
    one mapping. Beyond this F fewer than half the permutations are storable, at any width.
    """
    n = d * feature_count(d, bias)

    def storable_half(f: int) -> bool:
        k = f * f * (f - 1) / 2
        cells_log2 = 1 + n * math.log2(math.e * k / n) if k > n else k  # 2^K sign patterns bound it too
        return cells_log2 >= math.lgamma(f + 1) / math.log(2) - 1

    low, high = 2, 4
    while storable_half(high):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if storable_half(mid) else (low, mid)
    return low


def features(keys: np.ndarray, bias: bool = False) -> torch.Tensor:
    """φ(k) for each key (float64): x_a·x_b for a ≤ b, with 1 prepended to x when ``bias``."""
    x = torch.as_tensor(keys, dtype=torch.float64)
    if bias:
        x = torch.cat([torch.ones(len(x), 1, dtype=x.dtype), x], dim=1)
    a, b = torch.triu_indices(x.shape[1], x.shape[1])
    return x[:, a] * x[:, b]


def as_quadratic(model: GatedMLP) -> torch.Tensor:
    """The d_out×p matrix W with model(x) = W φ(x), for a bilinear model without biases."""
    if model.activation != "bilinear" or any(b is not None for b in (model.up_bias, model.gate_bias, model.down_bias)):
        raise ValueError("as_quadratic takes a bilinear model without biases")
    with torch.no_grad():
        up, gate, down = model.up.double(), model.gate.double(), model.effective_down().double()
        pair = up[:, :, None] * gate[:, None, :]  # unit j: x^T (u_j g_jᵀ) x
        sym = pair + pair.transpose(1, 2)
        a, b = torch.triu_indices(model.d_in, model.d_in)
        coeff = torch.where(a == b, sym[:, a, b] / 2, sym[:, a, b])  # (m, p)
        return down @ coeff


def class_accuracy(factset: FactSet, bias: bool = False, steps: int = 3000, lr: float = 0.05) -> dict:
    """The bilinear class at any width, fitted directly: cross-entropy over W (convex) by Adam.

    ``loss`` near 0 means W separates the facts; a loss that stops far above 0 with a small gradient
    (``grad_norm``) is the convex minimum, so no width stores them all. Returns the accuracy reached.
    """
    phi = features(factset.keys, bias)
    values = torch.as_tensor(factset.values, dtype=torch.float64)
    target = torch.as_tensor(factset.mapping)
    w = torch.zeros(values.shape[1], phi.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(phi @ w.T @ values.T, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits = phi @ w.T @ values.T
    loss = torch.nn.functional.cross_entropy(logits, target)
    grad, = torch.autograd.grad(loss, w)
    return {"accuracy": float((logits.argmax(1) == target).double().mean()), "loss": float(loss.detach()),
            "grad_norm": float(grad.norm())}
