"""Fact sets: keys K (F×d), values V (M×d) and a map f: [F] → [M] that an MLP must store.

Every table is a deterministic function of (geometry, d, F, seed), so every method in a sweep
sees exactly the same embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GEOMETRIES = ("spherical", "gaussian", "uniform", "spike", "condition")
# Real embeddings of a language model (factmlp.llm): captured from a model, not sampled here.
LLM_GEOMETRIES = ("llm_token_embeddings", "llm_mlp_io")
ALL_GEOMETRIES = GEOMETRIES + LLM_GEOMETRIES
SPIKE_TARGETS = ("keys", "values", "both")
MAPPINGS = ("permutation", "identity")


@dataclass(frozen=True)
class FactSet:
    """Keys, values and the map; ``targets`` are the values each key must decode to."""

    keys: np.ndarray
    values: np.ndarray
    mapping: np.ndarray

    def __post_init__(self):
        if self.keys.ndim != 2 or self.values.ndim != 2 or self.keys.shape[1] != self.values.shape[1]:
            raise ValueError(f"keys {self.keys.shape} and values {self.values.shape} must be 2-D with equal width")
        if self.mapping.shape != (len(self.keys),):
            raise ValueError(f"mapping has shape {self.mapping.shape}, expected ({len(self.keys)},)")
        if len(self.mapping) and (self.mapping.min() < 0 or self.mapping.max() >= len(self.values)):
            raise ValueError("mapping indexes outside the value table")

    @property
    def num_facts(self) -> int:
        return len(self.keys)

    @property
    def d(self) -> int:
        return self.keys.shape[1]

    @property
    def targets(self) -> np.ndarray:
        return self.values[self.mapping]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sample_table(geometry: str, rows: int, d: int, rng: np.random.Generator, *, kappa: float = 10.0) -> np.ndarray:
    """One embedding table of the named base geometry (spike is applied separately, see ``spike``).

    spherical/spike: Gaussian rows on the unit sphere; gaussian: N(0, I/d) rows (norm ≈ 1, not
    normalised); uniform: U(0,1)^d rows on the unit sphere (all-positive, so strongly anisotropic);
    condition: spherical rows with the singular values replaced by a ramp (see ``condition``).
    """
    if geometry in ("spherical", "spike"):
        return _unit_rows(rng.standard_normal((rows, d)))
    if geometry == "gaussian":
        return rng.standard_normal((rows, d)) / np.sqrt(d)
    if geometry == "uniform":
        return _unit_rows(rng.uniform(0.0, 1.0, (rows, d)))
    if geometry == "condition":
        return condition(_unit_rows(rng.standard_normal((rows, d))), kappa)
    raise ValueError(f"unknown geometry {geometry!r}; allowed: {', '.join(GEOMETRIES)}")


def spike_direction(d: int, seed: int) -> np.ndarray:
    """The fixed random unit vector u of the spike of every fact set with this (d, seed)."""
    return _unit_rows(np.random.default_rng([seed, 3]).standard_normal((1, d)))[0]


def spike(table: np.ndarray, direction: np.ndarray, beta: float) -> np.ndarray:
    """Rank-one anisotropy e' = (I + β u uᵀ) e, rows renormalised to the unit sphere."""
    return _unit_rows(table + beta * np.outer(table @ direction, direction))


def condition(table: np.ndarray, kappa: float) -> np.ndarray:
    """Replace the singular values by a linear ramp from 1 to 1/κ, keeping the Frobenius norm."""
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    u, s, vt = np.linalg.svd(table, full_matrices=False)
    ramp = np.linspace(1.0, 1.0 / kappa, len(s))
    ramp *= np.linalg.norm(s) / np.linalg.norm(ramp)
    return (u * ramp) @ vt


def whiten(table: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """ṽ = Σ^{-1/2} v with Σ the centred covariance, so the whitened rows have identity covariance.

    Centred because decodability depends only on differences v_i − v_j, which a mean does not
    change. Directions with variance below ``rtol`` × the largest (rank-deficient Σ, F ≤ d) are
    dropped (pseudo-inverse) instead of being blown up by 1/√ε. Raises ρ and capacity, and the
    Lipschitz constant of an MLP that decodes to these values.
    """
    centred = table - table.mean(axis=0)
    cov = centred.T @ centred / len(table)
    evals, evecs = np.linalg.eigh(cov)
    keep = evals > rtol * max(evals.max(), 0.0)
    inv_sqrt = (evecs[:, keep] / np.sqrt(evals[keep])) @ evecs[:, keep].T
    return table @ inv_sqrt


def make_factset(
    geometry: str = "spherical",
    d: int = 64,
    num_facts: int = 256,
    seed: int = 0,
    *,
    tied: bool = True,
    mapping: str = "permutation",
    beta: float = 0.0,
    spike_on: str = "both",
    kappa: float = 10.0,
    whiten_values: bool = False,
    llm_model: str = "all-MiniLM-L6-v2",
    llm_layer: int = -1,
    llm_rows: int = 0,
    llm_normalize: bool = True,
    table_path: str = "",
) -> FactSet:
    """A synthetic fact set with M = F values.

    tied: keys and values are drawn as one table (as with tied LM embeddings); else separate draws.
    A spike on only one side, or whitened values, then makes keys and values differ.
    mapping: 'permutation' (f a random permutation) or 'identity'.
    beta, spike_on: the spike anisotropy of geometry 'spike' (β = 0 is plain spherical); a nonzero
    β with another geometry is an error rather than silently ignored.
    kappa: the condition number of geometry 'condition'.
    llm_*, table_path: the real embeddings of geometries llm_token_embeddings and llm_mlp_io (see
    ``factmlp.llm.llm_factset``); the synthetic geometries ignore them.
    """
    if geometry not in ALL_GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; allowed: {', '.join(ALL_GEOMETRIES)}")
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; allowed: {', '.join(MAPPINGS)}")
    if spike_on not in SPIKE_TARGETS:
        raise ValueError(f"unknown spike_on {spike_on!r}; allowed: {', '.join(SPIKE_TARGETS)}")
    if beta < 0 or (beta and geometry != "spike"):
        raise ValueError(f"beta={beta} needs geometry 'spike' and beta >= 0 (got geometry {geometry!r})")
    if d < 1 or num_facts < 1:
        raise ValueError(f"d and num_facts must be positive, got d={d}, num_facts={num_facts}")
    if geometry in LLM_GEOMETRIES:
        from factmlp.llm import llm_factset  # lazy: only real embeddings need a model

        real = llm_factset(geometry, d, num_facts, seed, tied=tied, mapping=mapping, model=llm_model,
                           layer=llm_layer, rows=llm_rows, table_path=table_path, normalize=llm_normalize)
        return FactSet(real.keys, whiten(real.values), real.mapping) if whiten_values else real
    # Independent streams so that, e.g., changing the map never changes the embeddings.
    keys_rng, values_rng, map_rng = (np.random.default_rng([seed, i]) for i in range(3))
    keys = sample_table(geometry, num_facts, d, keys_rng, kappa=kappa)
    values = keys.copy() if tied else sample_table(geometry, num_facts, d, values_rng, kappa=kappa)
    if geometry == "spike" and beta:
        direction = spike_direction(d, seed)
        if spike_on in ("keys", "both"):
            keys = spike(keys, direction, beta)
        if spike_on in ("values", "both"):
            values = spike(values, direction, beta)
    if whiten_values:
        values = whiten(values)
    f = map_rng.permutation(num_facts) if mapping == "permutation" else np.arange(num_facts)
    return FactSet(keys=keys, values=values, mapping=f)
