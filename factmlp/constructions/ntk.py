"""The prior explicit construction (Nichani–Lee–Bietti style NTK/Hermite), docs/science.md#ntk.

g(x) = D[(U x) ⊙ relu(G x)], zero biases, with
  G ∈ R^{m×d} ~ N(0, 1)                      gate rows,
  D ∈ R^{d×m} ~ N(0, 1), columns normalised   down projection,
  H = h_deg(K Gᵀ) ∈ R^{F×m}                   normalised probabilists' Hermite features of the keys,
  A = V_f D ∈ R^{F×m}                         row i: the target v_f(i) read through D (A_ik = <v_f(i), D_k>),
  U = (H ⊙ A)ᵀ K / m ∈ R^{m×d}                up rows.
Reading of "A = V_f D": V_f is the F×d table of targets (row i = v_f(i)) and D is d×m, so A is F×m
and A_ik is how much unit k's output direction D_k points at key i's target; the shapes of U then
work out. Why it stores: unit k adds D_k (u_k·x) relu(g_k·x); for x = k_i the i-th term of u_k·x is
H_ik A_ik / m, and averaging over the random units gives E[h(z) relu(z)] · (1/m) Σ_k D_k D_kᵀ v_f(i)
∝ v_f(i), while the other facts add noise that shrinks only like 1/√m — hence the huge widths.
Zero biases are omitted, so W = 3·d·m. Degree 1 gives H = K Gᵀ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from factmlp.constructions.hebbian import nested_gaussian
from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP
from factmlp.options import Method, Options, ParamError, option


def hermite(degree: int, z: np.ndarray) -> np.ndarray:
    """He_n(z)/√(n!), orthonormal under N(0, 1), by the three-term recurrence."""
    prev, cur = np.ones_like(z), z.copy()
    if degree == 0:
        return prev
    for n in range(1, degree):
        prev, cur = cur, (z * cur - math.sqrt(n) * prev) / math.sqrt(n + 1)
    return cur


def relu_hermite_coefficient(degree: int) -> float:
    """E[relu(z) He_n(z)/√n!]: the signal each unit contributes; zero for odd n ≥ 3, negative for n = 4, 8, …"""
    if degree == 0:
        return 1 / math.sqrt(2 * math.pi)
    if degree == 1:
        return 0.5
    if degree % 2:
        return 0.0
    # E[relu(z) He_n(z)] = φ(0) He_{n-2}(0) for n ≥ 2, and He_{2k}(0) = (-1)^k (2k-1)!!
    k = (degree - 2) // 2
    he0 = (-1) ** k * math.prod(range(1, 2 * k, 2))
    return he0 / math.sqrt(2 * math.pi) / math.sqrt(math.factorial(degree))


@dataclass(frozen=True)
class NtkOptions(Options):
    """``chunk``: units whose features are held at once (F × chunk floats), bounding memory at large m."""

    degree: int = option(1, "Hermite degree of the features (0, 1, 2, 6, 10, ...)", low=0, high=64)
    chunk: int = 4096


def ntk(factset: FactSet, width: int, *, seed: int = 0, options: NtkOptions = NtkOptions()) -> GatedMLP:
    """The NTK/Hermite construction at hidden width m; ``options.degree`` is the Hermite degree of H.

    Degrees where relu's Hermite coefficient c_n is not positive are rejected: each unit's expected
    contribution to its own fact is c_n·v_f(i), so c_n = 0 (odd n ≥ 3) stores nothing and c_n < 0
    (n = 4, 8, 12, …) points every output away from its value.
    """
    degree, chunk = options.degree, options.chunk
    coefficient = relu_hermite_coefficient(degree)
    if coefficient <= 0.0:
        raise ParamError("degree", f"got {degree}, where relu's Hermite coefficient is {coefficient:.3g}, so each "
                         "unit's expected pull toward its own value is not positive and nothing is stored; "
                         "allowed: 0, 1, 2, 6, 10, ... (c_n > 0)")
    keys = np.asarray(factset.keys, dtype=np.float64)
    d = factset.d
    gate = nested_gaussian(width, d, [seed, 11, 0])  # nested across widths (see hebbian.random_features)
    down = nested_gaussian(width, d, [seed, 11, 1]).T
    down /= np.linalg.norm(down, axis=0, keepdims=True)
    targets = factset.targets
    up = np.empty((width, d))
    for start in range(0, width, chunk):  # F×chunk blocks bound memory at large m
        cols = slice(start, start + chunk)
        feats = hermite(degree, keys @ gate[cols].T)
        feats *= targets @ down[:, cols]
        up[cols] = feats.T @ keys / width
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    return GatedMLP(t(up), t(gate), t(down), activation="relu")


NTK = Method("ntk", ntk, NtkOptions)

METHODS = (NTK,)
