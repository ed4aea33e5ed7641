"""The revised paper's bilinear-feature constructions (SCIENCE.md §5.3).

Features φ(x) = (A0 x) ⊙ (A1 x)/√m with Gaussian A0, A1; a readout W maps them to values. As a
gated MLP: up = A0/√m, gate = A1, bilinear gate, down = W, so W = 3·d·m parameters.
"""
from __future__ import annotations

import numpy as np
import torch

from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP


def random_features(d: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, width, 7])
    return rng.standard_normal((width, d)), rng.standard_normal((width, d))


def features(keys: np.ndarray, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
    return (keys @ a0.T) * (keys @ a1.T) / np.sqrt(len(a0))


def as_mlp(a0: np.ndarray, a1: np.ndarray, readout: np.ndarray) -> GatedMLP:
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    return GatedMLP(t(a0 / np.sqrt(len(a0))), t(a1), t(readout), activation="bilinear")


def hebbian(factset: FactSet, width: int, *, seed: int = 0) -> GatedMLP:
    """Hebbian readout W = V_fᵀ Φ / F: each fact adds its value times its feature vector."""
    a0, a1 = random_features(factset.d, width, seed)
    phi = features(factset.keys, a0, a1)
    return as_mlp(a0, a1, factset.targets.T @ phi / factset.num_facts)


def ridge_readout(phi: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """W = V_fᵀ Φ (ΦᵀΦ + λF·I)⁻¹ when m ≤ F, else the dual form V_fᵀ (ΦΦᵀ + λI)⁻¹ Φ (SCIENCE.md §5.3)."""
    num_facts, width = phi.shape
    if width <= num_facts:
        gram = phi.T @ phi + ridge * num_facts * np.eye(width)
        return np.linalg.solve(gram, phi.T @ targets).T
    gram = phi @ phi.T + ridge * np.eye(num_facts)
    return (np.linalg.solve(gram, targets).T) @ phi


def hebbian_whitened(factset: FactSet, width: int, *, seed: int = 0, ridge: float = 1e-6) -> GatedMLP:
    """Ridge-regression readout on the same features: decorrelating them raises capacity."""
    a0, a1 = random_features(factset.d, width, seed)
    phi = features(factset.keys, a0, a1)
    return as_mlp(a0, a1, ridge_readout(phi, factset.targets, ridge))
