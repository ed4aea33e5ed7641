"""The revised paper's data-dependent bilinear construction (docs/science.md#data_dependent).

Random features φ(x) = (A0 x) ⊙ (A1 x)/√m store little per unit because A0, A1 ignore the keys.
Here the features are fitted to the facts by two ridge least-squares solves, each linear because
the other factor is held fixed: with the Hebbian readout W0 = V_fᵀ Φ / F frozen,
    A1 ← argmin Σ_i ‖W0 [(A0 k_i/√m) ⊙ (A1 k_i)] − v_f(i)‖² + λ‖A1‖²   (A0 fixed),
    A0 ← the same problem in A0 with the new A1 fixed,
each solved by Jacobi-preconditioned conjugate gradient on its normal equations (m·d unknowns,
never forming the (m·d)² matrix), then the final readout is the ridge readout of hebbian.py.
As a gated MLP: up = A0/√m, gate = A1, bilinear gate, down = W, so W = 3·d·m parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factmlp.constructions.hebbian import as_mlp, features, random_features, ridge_readout
from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP
from factmlp.options import Method, Options, option


def fit_factor(partner: np.ndarray, keys: np.ndarray, targets: np.ndarray, readout: np.ndarray,
               init: np.ndarray, ridge: float, iters: int, tol: float, dtype=np.float32) -> np.ndarray:
    """Ridge least squares for one factor B (m×d) of the output W [partner ⊙ (K Bᵀ)].

    partner: F×m, the fixed other factor's features (A0 K/√m); readout W: d×m. Normal equations
    Jᵀ J B + λ B = Jᵀ V_f with J B = ((K Bᵀ) ⊙ partner) Wᵀ (F×d); λ is relative to the mean
    diagonal of JᵀJ so one value works at any scale. Starts from ``init`` (CG from a warm start
    converges to the same unique ridge solution) and stops at relative residual ``tol``.
    """
    keys_t, partner_t, readout_t = (x.astype(dtype) for x in (keys, partner, readout))

    def normal(b: np.ndarray) -> np.ndarray:
        """Jᵀ J b in ``dtype``; float32 (the default) is twice as fast and gives the same stored facts
        (the CG iterates and the final readout stay float64)."""
        out = ((keys_t @ b.T.astype(dtype)) * partner_t) @ readout_t.T  # F×d outputs of J b
        return (((out @ readout_t) * partner_t).T @ keys_t).astype(np.float64)

    diag = np.sum(readout ** 2, axis=0)[:, None] * ((partner ** 2).T @ (keys ** 2))
    lam = ridge * float(diag.mean()) if diag.mean() > 0 else ridge
    precond = 1.0 / (diag + lam)
    rhs = ((targets @ readout) * partner).T @ keys
    b = init.copy()
    r = rhs - normal(b) - lam * b
    z = precond * r
    p = z.copy()
    rz = float(np.sum(r * z))
    stop = tol * float(np.linalg.norm(rhs))
    for _ in range(iters):
        if float(np.linalg.norm(r)) <= stop:
            break
        q = normal(p) + lam * p
        alpha = rz / float(np.sum(p * q))
        b += alpha * p
        r -= alpha * q
        z = precond * r
        rz, rz_old = float(np.sum(r * z)), rz
        p = z + (rz / rz_old) * p
    return b


@dataclass(frozen=True)
class DataDependentOptions(Options):
    """``cg_tol``: relative residual at which a factor's conjugate gradient stops early."""

    ridge: float = option(1e-6, "ridge λ of the factor fits and the readout", low=0.0)
    cg_iters: int = option(25, "conjugate-gradient steps per factor fit", low=0)
    cg_tol: float = 1e-6


def data_dependent(factset: FactSet, width: int, *, seed: int = 0,
                   options: DataDependentOptions = DataDependentOptions()) -> GatedMLP:
    """Fit A1 then A0 by ridge least squares against a frozen Hebbian readout, then ridge readout."""
    keys, targets = factset.keys, factset.targets
    ridge, iters, tol = options.ridge, options.cg_iters, options.cg_tol
    scale = 1.0 / np.sqrt(width)
    a0, a1 = random_features(factset.d, width, seed)
    readout = targets.T @ features(keys, a0, a1) / factset.num_facts  # Hebbian W0, d×m
    a1 = fit_factor(keys @ a0.T * scale, keys, targets, readout, a1, ridge, iters, tol)
    a0 = fit_factor(keys @ a1.T * scale, keys, targets, readout, a0, ridge, iters, tol)
    return as_mlp(a0, a1, ridge_readout(features(keys, a0, a1), targets, ridge))


DATA_DEPENDENT = Method("data_dependent", data_dependent, DataDependentOptions)

METHODS = (DATA_DEPENDENT,)
