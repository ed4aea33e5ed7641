"""Where a capacity cell's minimum width should lie, from the cells of its setting already finished.

A search opened around a good guess costs a few probes instead of a gallop over [1, 65536], and a
bad guess costs probes, never correctness (``orchestrator.search.SmallestSuccess``). Measured on the
GD grid of ``benchmarks/search_efficiency.py``: log m is close to linear in log(F/d) but bends
upward (the slope grows from about 0.6 to 1.2 per octave between F/d = 2 and 32), so a straight
line through the smaller cells predicts the larger ones 10–30% low; a parabola in log(F/d), with a
log d term once the cells tell the two apart, predicts them within about 10%.
"""
from __future__ import annotations

import math

import numpy as np

from orchestrator.experiment import is_set
from orchestrator.search import ARITY, HIGH, LOW, VERIFY, Prediction

# What a prediction extrapolates over: cells that differ only in these are the same setting.
FREE_IN_PREDICTION = ("num_facts", "d", "seed", LOW, HIGH, ARITY, VERIFY)
# The GD recipe's rule of thumb F ≈ 0.75·d·m (docs/science.md#the-gd-recipe), for a GD cell with
# nothing finished before it. The GD cells of results/reference/ lie at 0.75–1.5× of it on synthetic
# geometries (2.3–3.4× on real embeddings at threshold 0.98, where the first bracket widens by doubling).
GD_FACTS_PER_WIDTH_AND_DIM = 0.75
NO_DATA_SPREAD = 0.5
MIN_SPREAD, MAX_SPREAD = 0.06, 0.25


def predict(cell: dict, finished: list[dict]) -> Prediction | None:
    """The expected minimum width of ``cell`` and the spread of the search's belief around it.

    From the finished cells of the same setting that stored (equal in every parameter but F, d,
    seed and the search range): log2 m fitted against x = log2(F/d) (``_fit``). The spread is 1.5×
    the RMS error of the same fit predicting each finished cell from the cells of smaller F/d (its
    errors once it had at least three F/d values to bend through), between 6% and 25%; 25% before
    that. With nothing finished: GD's rule of thumb, other methods None (the plain search).
    """
    same = [c for c in finished if c.get("stored") is True and is_set(c.get("min_width"))
            and all(c.get(k) == v for k, v in cell.items() if k not in FREE_IN_PREDICTION)]
    if not same:
        if cell.get("method") != "gd":
            return None
        return Prediction(cell["num_facts"] / (GD_FACTS_PER_WIDTH_AND_DIM * cell["d"]), NO_DATA_SPREAD)
    x = np.log2([c["num_facts"] / c["d"] for c in same])
    log_d = np.log2([c["d"] for c in same])
    y = np.log2([float(c["min_width"]) for c in same])
    value = 2 ** _fit(x, log_d, y, math.log2(cell["num_facts"] / cell["d"]), math.log2(cell["d"]))
    errors = []
    for i in range(len(y)):
        before = x < x[i]
        if len(np.unique(x[before])) >= 3:
            errors.append(y[i] - _fit(x[before], log_d[before], y[before], x[i], log_d[i]))
    rms = float(np.sqrt(np.mean(np.square(errors)))) if errors else math.inf
    return Prediction(value, min(MAX_SPREAD, max(MIN_SPREAD, 2 ** (1.5 * rms) - 1)))


def _fit(x: np.ndarray, log_d: np.ndarray, y: np.ndarray, at_x: float, at_log_d: float) -> float:
    """log2 m at (``at_x``, ``at_log_d``) by least squares on the finished cells.

    One F/d value: slope 1 (m ∝ F/d). Two or more: a line in x, a parabola from three values on
    (a line again if it bends down, or up by more than 0.5 per octave squared), plus a log d term
    once the cells hold two d and one cell more than coefficients.
    """
    levels = len(np.unique(x))
    if levels == 1:
        return float(np.mean(y) + at_x - np.mean(x))
    columns, at = [np.ones_like(x), x], [1.0, at_x]
    if levels >= 3:
        columns.append(x ** 2)
        at.append(at_x ** 2)
    if len(np.unique(log_d)) >= 2 and len(y) >= len(columns) + 2:
        columns.append(log_d)
        at.append(at_log_d)
    beta = np.linalg.lstsq(np.column_stack(columns), y, rcond=None)[0]
    if levels >= 3 and not 0 <= beta[2] <= 0.5:
        beta = np.linalg.lstsq(np.column_stack(columns[:2]), y, rcond=None)[0]
        at = at[:2]
    return float(np.dot(at, beta))
