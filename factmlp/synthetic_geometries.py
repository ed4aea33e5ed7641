"""Synthetic embedding geometries: keys and values sampled here (docs/science.md#fact-sets-and-geometries).

spherical (Gaussian rows on the unit sphere, the default), gaussian (N(0, I/d) rows, not
normalised), uniform (U(0,1)^d rows on the sphere: all-positive, strongly anisotropic), spike (a
rank-one anisotropy of strength β on keys, values or both) and condition (singular values replaced
by a ramp from 1 to 1/κ). M = F values; a fact set is a deterministic function of (geometry, d, F,
seed, options), so every method in a sweep sees exactly the same embeddings.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from factmlp.factsets import MAPPINGS, FactSet, Geometry, assemble, stream, unit_rows
from factmlp.options import Options, ParamError, option

NAMES = ("spherical", "gaussian", "uniform", "spike", "condition")
SPIKE_TARGETS = ("keys", "values", "both")
SPIKE_AXES = ("random", "row")


@dataclass(frozen=True)
class SyntheticOptions(Options):
    tied: bool = option(True, "keys and values are the same table")
    mapping: str = option("permutation", choices=MAPPINGS)
    beta: float = option(0.0, "spike strength (geometry spike)", low=0.0, high=1e3)
    spike_on: str = option("both", choices=SPIKE_TARGETS)
    spike_axis: str = option("random", "the spike's direction u: a random unit vector, or the first key's own "
                             "direction (as the revised paper's code draws it: its generator has the "
                             "embeddings' seed, so u is the first embedding row)", choices=SPIKE_AXES)
    kappa: float = option(10.0, "condition number (geometry condition)", low=1.0, high=1e12)
    condition_on: str = option("both", "which tables the condition number reshapes (geometry condition): "
                               "values only moves ρ with the keys left isotropic", choices=SPIKE_TARGETS)
    whiten: bool = option(False, "whiten the values")


def sample_table(geometry: str, rows: int, d: int, rng: np.random.Generator, *, kappa: float = 10.0) -> np.ndarray:
    """One embedding table of the named base geometry (spike is applied separately, see ``spike``)."""
    if geometry in ("spherical", "spike"):
        return unit_rows(rng.standard_normal((rows, d)))
    if geometry == "gaussian":
        return rng.standard_normal((rows, d)) / np.sqrt(d)
    if geometry == "uniform":
        return unit_rows(rng.uniform(0.0, 1.0, (rows, d)))
    if geometry == "condition":
        return condition(unit_rows(rng.standard_normal((rows, d))), kappa)
    raise ParamError('geometry', f"got {geometry!r}; allowed: {', '.join(NAMES)}")


def spike_direction(d: int, seed: int) -> np.ndarray:
    """The fixed random unit vector u of the spike of every fact set with this (d, seed)."""
    return unit_rows(stream(seed, "spike").standard_normal((1, d)))[0]


def spike(table: np.ndarray, direction: np.ndarray, beta: float) -> np.ndarray:
    """Rank-one anisotropy e' = (I + β u uᵀ) e, rows renormalised to the unit sphere."""
    return unit_rows(table + beta * np.outer(table @ direction, direction))


def condition(table: np.ndarray, kappa: float) -> np.ndarray:
    """Replace the singular values by a linear ramp from 1 to 1/κ, keeping the Frobenius norm."""
    if kappa < 1:
        raise ParamError('kappa', f"got {kappa}; allowed: >= 1")
    u, s, vt = np.linalg.svd(table, full_matrices=False)
    ramp = np.linspace(1.0, 1.0 / kappa, len(s))
    ramp *= np.linalg.norm(s) / np.linalg.norm(ramp)
    return (u * ramp) @ vt


def check(geometry: str, d: int, num_facts: int, options: SyntheticOptions) -> None:
    if options.beta and geometry != "spike":
        raise ParamError('beta', f"got {options.beta} with geometry {geometry!r}; allowed: 0 unless geometry spike")
    if d < 1 or num_facts < 1:
        raise ParamError('d', f"d and num_facts must be positive, got d={d}, num_facts={num_facts}")


def _table(geometry: str, options: SyntheticOptions, side: str, rows: int, d: int, seed: int) -> np.ndarray:
    """One side's table (tied: both drawn from the keys' stream); a condition geometry leaves the
    side that ``condition_on`` excludes spherical."""
    if geometry == "condition" and options.condition_on not in (side, "both"):
        geometry = "spherical"
    return sample_table(geometry, rows, d, stream(seed, "keys" if options.tied else side), kappa=options.kappa)


def build(geometry: str, d: int, num_facts: int, seed: int, options: SyntheticOptions) -> FactSet:
    """Keys and values of the geometry (tied: one table, as with tied LM embeddings; else two draws;
    a spike on one side only, or whitened values, then makes them differ), then the map."""
    check(geometry, d, num_facts, options)
    keys = _table(geometry, options, "keys", num_facts, d, seed)
    one_table = options.tied and (geometry != "condition" or options.condition_on == "both")
    values = keys.copy() if one_table else _table(geometry, options, "values", num_facts, d, seed)
    if geometry == "spike" and options.beta:
        direction = spike_direction(d, seed) if options.spike_axis == "random" else unit_rows(keys[:1])[0]
        if options.spike_on in ("keys", "both"):
            keys = spike(keys, direction, options.beta)
        if options.spike_on in ("values", "both"):
            values = spike(values, direction, options.beta)
    return assemble(keys, values, seed, mapping=options.mapping, whiten_values=options.whiten)


GEOMETRIES = {name: Geometry(name, functools.partial(build, name), SyntheticOptions, functools.partial(check, name))
              for name in NAMES}
