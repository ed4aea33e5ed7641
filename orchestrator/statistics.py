"""Statistics both halves use: the 95% interval over replicate seeds.

Part of the contract science code may import (with ``orchestrator.experiment``, ``orchestrator.search``
and ``orchestrator.badfile``): the orchestrator summarises seeds with it (``orchestrator.replicates``,
the ``intervals`` figures) and the laws of ``factmlp.scaling`` take their per-seed intervals from it,
so a table and a fit of the same seeds agree. It imports nothing from the rest of the orchestrator.
"""
from __future__ import annotations

import math

import numpy as np

BOUND_MARGIN = 1e-3  # a bounded value this close to a bound is taken as this far from it (logit(1) is infinite)


def interval(values, level: float = 0.95, *, log: bool | None = None,
             bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """Student's t interval of the mean over replicate seeds; of the geometric mean when ``log``
    (default: when every value is positive, as parameter counts spread multiplicatively); NaN below
    two values. With ``bounds`` (a fraction such as recall lies in (0, 1), a difference of two in
    (−1, 1)) the interval is taken on the logit scale of the bounded range, so it never runs past a
    bound; values within ``BOUND_MARGIN`` of a bound are moved that far inside it."""
    from scipy import stats
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if bounds is not None:
        lo, hi = bounds
        p = np.clip((values - lo) / (hi - lo), BOUND_MARGIN, 1 - BOUND_MARGIN)
        low, high = interval(np.log(p / (1 - p)), level, log=False)
        back = lambda z: lo + (hi - lo) / (1 + math.exp(-z))
        return back(low), back(high)
    positive = bool(np.all(values > 0)) if log is None else log
    x = np.log(values) if positive else values
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    low, high = x.mean() - half, x.mean() + half
    return (math.exp(low), math.exp(high)) if positive else (low, high)
