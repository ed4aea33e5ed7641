"""The rules every finding follows, shared by the experiments' findings.

A verdict ("holds" / "does not hold") needs at least ``MIN_SEEDS`` replicate seeds and an interval
that lies wholly on one side of the claim's threshold; otherwise the finding says "inconclusive" and
why. Intervals are Student's t intervals over seeds (``orchestrator.statistics.interval``), on the logit
scale for bounded quantities (recall, scores and their differences), so none runs past a bound; a
comparison of two settings measured on the same seeds is paired (the difference per seed).
Identical replicates are reported as such, never as a verdict.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from orchestrator.statistics import interval
from orchestrator.experiment import is_set

MIN_SEEDS = 3


def fmt(value: float) -> str:
    """Three significant digits, but counts of a thousand and more as whole numbers (1173, not 1.17e+03)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.0f}" if 1e3 <= abs(value) < 1e9 else f"{value:.3g}"


def seeds_of(rows: list[dict]) -> str:
    return ", ".join(str(s) for s in sorted({r.get("seed", 0) for r in rows}))


FRACTION, DIFFERENCE = (0.0, 1.0), (-1.0, 1.0)  # bounds of a fraction (recall, score) and of a difference of two


def summary(values: list[float], bounds: tuple[float, float] | None = None) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values: a t interval, on the logit scale within ``bounds``."""
    x = np.array([v for v in values if is_set(v)], dtype=float)
    if not len(x):
        return math.nan, math.nan, math.nan, 0
    low, high = interval(x, log=False, bounds=bounds)
    return float(x.mean()), low, high, len(x)


def against(values: list[float], threshold: float, *, above: bool = True, bounds: tuple[float, float] | None = None,
            resolution: str = "") -> tuple[str, str]:
    """(verdict, numbers) for 'the mean is above (or below) ``threshold``'. Identical replicates give a
    zero-width interval that is no certainty: they are named, with ``resolution`` (why the measurement
    cannot tell them apart: a search step, a stopping level), and never become a verdict."""
    mean, low, high, n = summary(values, bounds)
    numbers = f"{fmt(mean)} [{fmt(low)}, {fmt(high)}] over {n} seed(s)"
    if n < MIN_SEEDS:
        return f"inconclusive — {n} seed(s) (a verdict needs ≥ {MIN_SEEDS})", numbers
    finite = [v for v in values if is_set(v)]
    if len(set(finite)) == 1:
        why = f"; {resolution}" if resolution else "; a zero-width interval from identical replicates is not certainty"
        return f"inconclusive — the {n} replicates are identical ({fmt(finite[0])}){why}", f"{fmt(mean)} in every seed"
    if (low > threshold) if above else (high < threshold):
        return "holds", numbers
    if (high < threshold) if above else (low > threshold):
        return "does not hold", numbers
    return f"inconclusive — the interval contains {threshold:g}", numbers


def paired(rows_a: list[dict], rows_b: list[dict], metric: str) -> list[float]:
    """metric(a) − metric(b) per seed both were measured on."""
    a = {r.get("seed", 0): r.get(metric) for r in rows_a}
    b = {r.get("seed", 0): r.get(metric) for r in rows_b}
    return [a[s] - b[s] for s in sorted(set(a) & set(b)) if a[s] is not None and b[s] is not None
            and a[s] == a[s] and b[s] == b[s]]


def by(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out = defaultdict(list)
    for r in rows:
        out[tuple(r.get(k) for k in keys)].append(r)
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))
