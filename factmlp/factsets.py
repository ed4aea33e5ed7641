"""Fact sets: keys K (F×d), values V (M×d) and a map f: [F] → [M] that an MLP must store.

Only numpy: the sources of fact sets (``factmlp.synthetic_geometries``, ``factmlp.embeddings``) build
on this module (and declare their options with ``factmlp.options``), never on each other, and
``factmlp.geometries`` names them.
Every builder ends with ``assemble`` (normalise rows, whiten values, draw the map), and every random
draw of a fact set comes from ``stream(seed, purpose)``, one independent stream per purpose, so a
fact set is a deterministic function of its arguments and changing one choice (the map, the rows
sampled) never changes another's draw. See docs/science.md#fact-sets-and-geometries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAPPINGS = ("permutation", "identity")

# The random-stream convention: np.random.default_rng([seed, STREAMS[purpose]]).
STREAMS = {
    "keys": 0,  # synthetic keys
    "values": 1,  # synthetic values (untied)
    "map": 2,  # the permutation f of a synthetic fact set
    "spike": 3,  # the spike direction u
    "rows": 20,  # rows sampled from an embedding table
    "rows_map": 21,  # the permutation f of a fact set sampled from a table
}


def stream(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[purpose]])


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        """One line in a notebook (the default repr printed every array in full)."""
        return (f"FactSet(num_facts={self.num_facts}, d={self.d}, values={len(self.values)}, "
                f"dtype={self.keys.dtype})")

    @property
    def num_facts(self) -> int:
        return len(self.keys)

    @property
    def d(self) -> int:
        return self.keys.shape[1]

    @property
    def targets(self) -> np.ndarray:
        return self.values[self.mapping]


@dataclass(frozen=True)
class Geometry:
    """A named source of fact sets: ``build(d, num_facts, seed, options)`` with its typed ``options``
    class, and ``check(d, num_facts, options)``, which finds bad input without building anything."""

    name: str
    build: Callable[..., FactSet]
    options: type
    check: Callable[..., None] = lambda d, num_facts, options: None


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def whitener(table: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(Σ^{-1/2}, μ) of the rows' centred covariance Σ and mean μ.

    Centred because decodability depends only on differences v_i − v_j, which a mean does not
    change. Directions with variance below ``rtol`` × the largest (rank-deficient Σ, F ≤ d) are
    dropped (pseudo-inverse) instead of being blown up by 1/√ε.
    """
    mean = table.mean(axis=0)
    centred = table - mean
    cov = centred.T @ centred / len(table)
    evals, evecs = np.linalg.eigh(cov)
    keep = evals > rtol * max(evals.max(), 0.0)
    return (evecs[:, keep] / np.sqrt(evals[keep])) @ evecs[:, keep].T, mean


def whiten(table: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """ṽ = Σ^{-1/2} v, so the whitened rows have identity covariance. Raises ρ and capacity, and the
    Lipschitz constant of an MLP that decodes to these values."""
    return table @ whitener(table, rtol)[0]


def assemble(keys: np.ndarray, values: np.ndarray, seed: int, *, mapping: str = "permutation",
             normalize: bool = False, whiten_values: bool = False, map_stream: str = "map") -> FactSet:
    """The steps every builder shares once it has its rows: unit rows (``normalize``), whitened values,
    and the map f ('permutation': a random permutation from ``stream(seed, map_stream)``; 'identity')."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping: got {mapping!r}; allowed: {', '.join(MAPPINGS)}")
    if normalize:
        for name, table in (("keys", keys), ("values", values)):
            norms = np.linalg.norm(table, axis=1)
            if (norms == 0).any():
                raise ValueError(f"{name}: row {int(np.argmin(norms))} is zero and cannot be normalised")
        keys, values = unit_rows(keys), unit_rows(values)
    if whiten_values:
        values = whiten(values)
    num_facts = len(keys)
    f = stream(seed, map_stream).permutation(num_facts) if mapping == "permutation" else np.arange(num_facts)
    return FactSet(keys=keys, values=values, mapping=f)
