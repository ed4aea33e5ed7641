"""The revised paper's bilinear-feature constructions (docs/science.md#hebbian-and-hebbian_whitened).

Features φ(x) = (A0 x) ⊙ (A1 x)/√m with Gaussian A0, A1; a readout W maps them to values. As a
gated MLP: up = A0/√m, gate = A1, bilinear gate, down = W, so W = 3·d·m parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP
from factmlp.options import Method, Options, Whitened, option


def random_features(d: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A0, A1 (width×d) nested across widths: the rows at width m are the first m rows of one draw
    per (seed, factor), so a wider MLP contains a narrower one's features and success cannot flicker
    because the features were redrawn."""
    return tuple(nested_gaussian(width, d, [seed, 7, factor]) for factor in (0, 1))


def nested_gaussian(rows: int, cols: int, stream: list[int]) -> np.ndarray:
    """Standard normal rows from one stream: ``rows`` = m gives the first m rows of any larger draw
    (numpy's Generator fills row-major, value after value)."""
    return np.random.default_rng(stream).standard_normal((rows, cols))


def features(keys: np.ndarray, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
    phi = keys @ a0.T
    phi *= keys @ a1.T
    phi /= np.sqrt(len(a0))
    return phi


def as_mlp(a0: np.ndarray, a1: np.ndarray, readout: np.ndarray) -> GatedMLP:
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    return GatedMLP(t(a0 / np.sqrt(len(a0))), t(a1), t(readout), activation="bilinear")


def hebbian(factset: FactSet, width: int, *, seed: int = 0, options: Options = Options()) -> GatedMLP:
    """Hebbian readout W = V_fᵀ Φ / F: each fact adds its value times its feature vector."""
    a0, a1 = random_features(factset.d, width, seed)
    phi = features(factset.keys, a0, a1)
    return as_mlp(a0, a1, factset.targets.T @ phi / factset.num_facts)


def ridge_readout(phi: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """W = V_fᵀ Φ (ΦᵀΦ + λF·I)⁻¹ when m ≤ F, else the dual form V_fᵀ (ΦΦᵀ + λI)⁻¹ Φ."""
    num_facts, width = phi.shape
    if width <= num_facts:
        return _solve_pd(_gram(phi, ridge * num_facts), phi.T @ targets).T
    return _solve_pd(_gram(phi.T, ridge), targets).T @ phi


def _gram(x: np.ndarray, shift: float) -> np.ndarray:
    """xᵀx + shift·I in float64. Summed in float32 (half the time) when the shift is at least ten
    times the rounding that brings to the matrix (Frobenius norm ≈ eps·trace/√n for sums of n
    terms, the probabilistic bound of Higham & Mary 2019): the ridge then dominates the rounding,
    as it does with the default λ = 1e-6 (by about 100× at F = 16384). numpy computes xᵀx as a
    symmetric rank-k update either way."""
    n = len(x)
    trace = float(np.einsum("ij,ij->", x, x))
    if shift >= 10 * np.finfo(np.float32).eps * trace / np.sqrt(n):
        x32 = x.astype(np.float32)
        gram = (x32.T @ x32).astype(np.float64)
    else:
        gram = x.T @ x
    gram[np.diag_indices_from(gram)] += shift
    return gram


def _solve_pd(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Cholesky solve (half the work of LU); least squares if the matrix is not numerically PD."""
    try:
        return scipy.linalg.solve(gram, rhs, assume_a="pos", check_finite=False)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


@dataclass(frozen=True)
class HebbianWhitenedOptions(Options):
    ridge: float = option(1e-6, "ridge λ of the readout", low=0.0)


def hebbian_whitened(factset: FactSet, width: int, *, seed: int = 0,
                     options: HebbianWhitenedOptions = HebbianWhitenedOptions()) -> GatedMLP:
    """Ridge-regression readout on the same features: decorrelating them raises capacity."""
    a0, a1 = random_features(factset.d, width, seed)
    phi = features(factset.keys, a0, a1)
    return as_mlp(a0, a1, ridge_readout(phi, factset.targets, options.ridge))


HEBBIAN = Method("hebbian", hebbian, whitened=Whitened("hebbian_whitened"))
HEBBIAN_WHITENED = Method("hebbian_whitened", hebbian_whitened, HebbianWhitenedOptions)

METHODS = (HEBBIAN, HEBBIAN_WHITENED)
