"""Scaling-law fits of SCIENCE.md §7, each with a bootstrap confidence interval over cells.

- size law   W = C·F·(log2 F + b): for each b, C is closed-form in log space; b is grid-searched.
- power law  log2 F = s·log2 W + c: s ≈ 1 (slightly below) is linear-up-to-log storage.
- ρ law      log W = a + p·log(1/ρ): how value decodability sets the cost at fixed (d, F).
Each fit keeps the indices of the rows it used, so a report can name the exact cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

B_MAX = 64.0  # upper end of the b grid of the size law


@dataclass(frozen=True)
class Fit:
    """A fitted law: point estimates, 95% bootstrap intervals, quality and the rows used."""

    law: str
    estimates: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    r2: float
    rows: tuple[int, ...]
    extra: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        e = self.estimates
        x = np.asarray(x, dtype=float)
        if self.law == "size":
            return e["C"] * x * (np.log2(x) + e["b"])
        if self.law == "power":
            return e["s"] * np.log2(x) + e["c"]
        return np.exp(e["a"] + e["p"] * np.log(1.0 / x))


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - fitted) ** 2) / total) if total > 0 else float("nan")


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _size(facts: np.ndarray, params: np.ndarray, b_grid: np.ndarray) -> dict[str, float]:
    """For every b at once: log C = mean(log W − log(F(log2 F + b))); keep the b with least error."""
    shape = np.log(facts[None, :] * (np.log2(facts)[None, :] + b_grid[:, None]))
    log_c = np.mean(np.log(params)[None, :] - shape, axis=1)
    sse = np.sum((np.log(params)[None, :] - log_c[:, None] - shape) ** 2, axis=1)
    best = int(np.argmin(sse))
    return {"C": float(np.exp(log_c[best])), "b": float(b_grid[best])}


def _estimate(law: str, x: np.ndarray, y: np.ndarray, b_grid: np.ndarray) -> dict[str, float]:
    if law == "size":
        return _size(x, y, b_grid)
    if law == "power":
        s, c = _line(np.log2(y), np.log2(x))  # log2 F = s·log2 W + c
        return {"s": s, "c": c}
    p, a = _line(np.log(1.0 / x), np.log(y))  # log W = a + p·log(1/ρ)
    return {"a": a, "p": p}


def fit(law: str, x, y, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Fit:
    """Fit ``law`` ∈ {size, power, rho}; x is F (size, power) or ρ (rho), y is W.

    Bootstrap: resample rows with replacement ``n_boot`` times, refit, take percentile intervals.
    """
    if law not in ("size", "power", "rho"):
        raise ValueError(f"unknown law {law!r}; allowed: size, power, rho")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0))
    if law != "rho":
        keep = keep[x[keep] > 1]
    if len(keep) < 3 or len(np.unique(x[keep])) < 2:
        raise ValueError(f"{law} law needs at least 3 rows with 2 distinct x values, got {len(keep)}")
    xs, ys = x[keep], y[keep]
    b_grid = np.linspace(-np.log2(xs.min()) + 0.05, B_MAX, 2048) if law == "size" else np.empty(0)
    estimates = _estimate(law, xs, ys, b_grid)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(xs), len(xs))
        if len(np.unique(xs[pick])) >= 2:
            draws.append(_estimate(law, xs[pick], ys[pick], b_grid))
    tail = (1 - level) / 2
    intervals = {k: (float(np.quantile([d[k] for d in draws], tail)), float(np.quantile([d[k] for d in draws], 1 - tail)))
                 for k in estimates}
    result = Fit(law, estimates, intervals, float("nan"), tuple(int(i) for i in keep))
    if law == "size":
        quality = _r2(np.log(ys), np.log(result.predict(xs)))
    elif law == "power":
        quality = _r2(np.log2(xs), result.predict(ys))
    else:
        quality = _r2(np.log(ys), np.log(result.predict(xs)))
    return Fit(law, estimates, intervals, quality, result.rows, {"n": len(keep), "n_boot": len(draws)})
