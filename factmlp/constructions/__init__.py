"""Explicit weight constructions, by name: each module declares its function, its typed options and
(where it has one) its whitened variant as a ``Method``, and lists its methods in ``METHODS``
(docs/science.md#constructions). Adding a construction is its module plus its name in ``MODULES``.

``factmlp.methods.build_fact_mlp`` builds any of them, and GD, by name. ``check_factset`` rejects
fact sets that no MLP can store, so a degenerate input fails loudly instead of yielding a silently
wrong MLP.
"""
from __future__ import annotations

import importlib

import numpy as np

from factmlp.factsets import FactSet
from factmlp.options import Method

# The modules of factmlp/constructions/ that declare constructions (each in its ``METHODS``).
MODULES = ("data_dependent", "encoder_decoder", "hebbian", "ntk")

CONSTRUCTIONS: dict[str, Method] = {m.name: m for module in MODULES
                                    for m in importlib.import_module(f"{__name__}.{module}").METHODS}


def check_factset(factset: FactSet, *, chunk: int = 2048) -> None:
    """Raise ValueError when no function of the keys can decode every fact by argmax <g(k_i), v_j>.

    Two obstructions: (1) two equal keys mapped to different values (g(k) is one vector, it cannot
    point at two values); (2) a target value that is not a vertex of the convex hull of the value
    table (decodability ρ_i = 0: every direction u scores some other value at least as high, e.g. a
    value inside the hull of the others, or a duplicated value row). Values no key maps to may be
    anything. Cost: a sort for (1); for (2) nothing more when all values have equal norms (then
    distinct values are all vertices), else one chunked V·Vᵀ and an LP for each value the cheap
    certificate u = v_i (or v_i − mean) misses.
    """
    keys, values, mapping = factset.keys, factset.values, factset.mapping
    if not (np.isfinite(keys).all() and np.isfinite(values).all()):
        raise ValueError("keys or values contain NaN or inf")
    _check_keys(keys, values, mapping)
    _check_values(values, np.unique(mapping), chunk)


def _check_keys(keys: np.ndarray, values: np.ndarray, mapping: np.ndarray) -> None:
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    twin = first[inverse]  # for each key, the first key equal to it
    clash = np.flatnonzero(np.any(values[mapping] != values[mapping[twin]], axis=1))
    if len(clash):
        i = int(clash[0])
        raise ValueError(f"keys {int(twin[i])} and {i} are equal but map to different values "
                         f"({int(mapping[twin[i]])} and {int(mapping[i])}): no function can store both facts")


def _check_values(values: np.ndarray, targets: np.ndarray, chunk: int) -> None:
    _, first, inverse, counts = np.unique(values, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    dup = np.flatnonzero(counts[inverse.ravel()][targets] > 1)
    if len(dup):
        j = int(targets[dup[0]])
        twins = np.flatnonzero(inverse.ravel() == inverse.ravel()[j]).tolist()
        raise ValueError(f"value rows {twins[:5]} are identical and value {j} is a target: decoding "
                         "cannot tell them apart (decodability rho = 0)")
    norms2 = np.einsum("ij,ij->i", values, values)
    if np.ptp(norms2) <= 1e-9 * norms2.max():
        return  # distinct points on one sphere are all exposed by u = v_i
    centred = values - values.mean(axis=0)
    todo = []
    for start in range(0, len(targets), chunk):
        rows = targets[start:start + chunk]
        for table in (values, centred):
            scores = table[rows] @ table.T
            own = scores[np.arange(len(rows)), rows].copy()
            scores[np.arange(len(rows)), rows] = -np.inf
            rows = rows[scores.max(axis=1) >= own]  # not certified by u = v_i yet
            if not len(rows):
                break
        todo.extend(rows.tolist())
    for j in todo:
        if _vertex_margin(values, j) <= 1e-12 * np.sqrt(norms2.max()):
            raise ValueError(f"value {j} is a target but lies in the convex hull of the other values "
                             "(decodability rho = 0): every direction scores another value at least as "
                             "high, so no MLP output decodes to it")


def _vertex_margin(values: np.ndarray, j: int) -> float:
    """max t s.t. <u, v_j − v_k> ≥ t for all k ≠ j, ‖u‖_∞ ≤ 1: positive iff v_j is an exposed vertex."""
    from scipy.optimize import linprog

    diff = np.delete(values[j] - values, j, axis=0)
    d = values.shape[1]
    a_ub = np.hstack([-diff, np.ones((len(diff), 1))])
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=a_ub, b_ub=np.zeros(len(diff)),
                  bounds=[(-1, 1)] * d + [(None, 1.0)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"vertex LP for value {j} failed: {res.message}")
    return -float(res.fun)
