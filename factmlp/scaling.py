"""Scaling-law fits (docs/science.md#scaling-fits), each with a bootstrap confidence interval.

- size law   W = C·F·(log2 F + b): for each b, C is closed-form in log space; b is grid-searched.
- power law  log2 F = s·log2 W + c: s ≈ 1 (slightly below) is linear-up-to-log storage.
- ρ law      log W = a + p·log(1/ρ): how value decodability sets the cost at fixed (d, F).

Replicates: with ``strata`` (the fact count F of each row, several seeds per F), a bootstrap draw
resamples the seeds within each F (a stratified bootstrap), so an interval reflects how much the
answer moves with the fact set, not only the scatter of a few points around a line. Without
replicates it resamples rows. With few seeds (3) that bootstrap is too narrow: it never draws a
fourth fact set. So with ``replicates`` (the seed of each row) the law is also fitted once per seed
and a Student's t interval taken over those fits; each parameter reports the wider of the two
intervals and says which (``Fit.interval_kind``). Each fit keeps the indices of the rows it used,
so a report names the cells.

Each law is also an object (``SIZE``, ``POWER``, ``RHO``: ``orchestrator.experiment.Law``) that an
experiment's ``FitSpec`` names: it fits itself, and its ``Fit`` draws itself (``curve``, ``band``), so
the orchestrator reports, records and draws a law without knowing which one it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orchestrator.statistics import interval

LAWS = ("size", "power", "rho")
B_MAX = 64.0  # upper end of the b grid of the size law
MIN_R2 = 0.5  # below this a fit says nothing about its law
MIN_RHO_RANGE = 1.1  # a rho law needs the largest rho at least 10% above the smallest
MIN_X_FOR_INTERVAL = 4  # through 3 values of x an interval says little: point estimates only


@dataclass(frozen=True)
class Fit:
    """A fitted law: point estimates, 95% bootstrap intervals, quality, the rows used and the draws."""

    law: str
    estimates: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    r2: float
    rows: tuple[int, ...]
    extra: dict = field(default_factory=dict)
    draws: tuple[dict, ...] = ()
    b_floor: float = float("-inf")
    interval_kind: dict[str, str] = field(default_factory=dict)  # per parameter: which interval is reported

    def predict(self, x, estimates: dict | None = None) -> np.ndarray:
        """y of the law at x, in the law's own direction: W for size and ρ, log2 F for power."""
        return predict(self.law, estimates or self.estimates, x)

    def curve(self, x, estimates: dict | None = None) -> np.ndarray:
        """The law as a figure draws it, y at x: W at F (size), F at W (power), W at 1/ρ (ρ)."""
        e = estimates or self.estimates
        x = np.asarray(x, dtype=float)
        if self.law == "power":
            return 2.0 ** predict(self.law, e, x)
        if self.law == "rho":
            return predict(self.law, e, 1.0 / x)
        return predict(self.law, e, x)

    def band(self, x, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``level`` interval of ``curve(x)`` over the bootstrap draws."""
        curves = np.array([self.curve(x, d) for d in self.draws or (self.estimates,)])
        tail = round((1 - level) / 2, 12)
        return np.quantile(curves, tail, axis=0), np.quantile(curves, 1 - tail, axis=0)

    def has_interval(self) -> bool:
        """Whether the fit saw enough distinct x for its intervals to be reported."""
        return len({round(v, 12) for v in self.extra.get("x", ())}) >= MIN_X_FOR_INTERVAL

    def problems(self) -> list[str]:
        """Why the fit is degenerate (empty when it is not): printed as a warning, never as a number."""
        out = []
        if not np.isfinite(self.r2) or self.r2 < MIN_R2:
            out.append(f"R² = {self.r2:.2f} < {MIN_R2}")
        if len({round(v, 12) for v in self.extra.get("x", ())}) < 3:
            out.append("fewer than 3 distinct x values")
        x = np.asarray(self.extra.get("x", ()), dtype=float)
        if self.law == "rho" and len(x) and x.max() < MIN_RHO_RANGE * x.min():
            out.append(f"ρ spans only {x.min():.3g}–{x.max():.3g} (less than {MIN_RHO_RANGE - 1:.0%} apart): "
                       "cost is not measured against a change of ρ")
        if self.law == "size" and self.estimates["b"] >= B_MAX - 0.5:
            out.append(f"b at the top of its grid ({B_MAX:g}): no log factor is identifiable over this range of F")
        if self.law == "size" and self.estimates["b"] <= self.b_floor + 0.5:
            out.append("b at the bottom of its grid")
        return out


def predict(law: str, e: dict, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if law == "size":
        return e["C"] * x * (np.log2(x) + e["b"])
    if law == "power":
        return e["s"] * np.log2(x) + e["c"]
    return np.exp(e["a"] + e["p"] * np.log(1.0 / x))


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - fitted) ** 2) / total) if total > 0 else float("nan")


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x (NaN when x does not vary: no line is defined)."""
    dx = x - x.mean()
    spread = float(dx @ dx)
    if spread <= 1e-12 * max(1.0, float(x @ x)):
        return float("nan"), float("nan")
    slope = float(dx @ (y - y.mean())) / spread
    return slope, float(y.mean() - slope * x.mean())


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


def resample(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one bootstrap draw: replicates resampled within each stratum when some stratum
    has replicates, else rows resampled over all (a lone row per stratum has nothing to resample)."""
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    if max(len(g) for g in groups) < 2:
        return rng.integers(0, len(strata), len(strata))
    return np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def _usable(law: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    keep = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0))
    return keep[x[keep] > 1] if law != "rho" else keep


BOOTSTRAP, PER_SEED = "stratified bootstrap", "per-seed t"


def per_replicate(law: str, x, y, replicates, b_grid=None) -> list[dict[str, float]]:
    """The law fitted to each replicate's rows alone (replicates with < 3 usable rows or one x skipped)."""
    x, y, replicates = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(replicates)
    out = []
    for r in sorted(set(replicates.tolist()), key=str):
        rows = np.flatnonzero(replicates == r)
        keep = rows[_usable(law, x[rows], y[rows])]
        if len(keep) >= 3 and len(np.unique(x[keep])) >= 2:
            grid = b_grid if b_grid is not None else np.linspace(-np.log2(x[keep].min()) + 0.05, B_MAX, 2048)
            estimate = _estimate(law, x[keep], y[keep], grid)
            if all(np.isfinite(v) for v in estimate.values()):
                out.append(estimate)
    return out


def wider(bootstrap: tuple[float, float], per_seed: tuple[float, float]) -> tuple[tuple[float, float], str]:
    """The wider of two intervals, named; a per-seed interval that is not finite does not count."""
    if not all(np.isfinite(per_seed)) or per_seed[1] - per_seed[0] <= bootstrap[1] - bootstrap[0]:
        return bootstrap, BOOTSTRAP
    return per_seed, PER_SEED


def fit(law: str, x, y, *, strata=None, replicates=None, n_boot: int = 1000, seed: int = 0,
        level: float = 0.95) -> Fit:
    """Fit ``law`` ∈ {size, power, rho}; x is F (size, power) or ρ (rho), y is W.

    ``strata`` (optional, one label per row, e.g. F): the bootstrap resamples rows within each
    label (see ``resample``); its intervals are percentile intervals over ``n_boot`` draws.
    ``replicates`` (optional, one seed per row): also fit each seed alone and report, per parameter,
    the wider of the bootstrap and the t interval over seeds (see the module docstring).
    """
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r}; allowed: {', '.join(LAWS)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot: got {n_boot!r}; allowed: an integer >= 1")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    strata = x if strata is None else np.asarray(strata)
    keep = _usable(law, x, y)
    if len(keep) < 3 or len(np.unique(x[keep])) < 2:
        raise ValueError(f"{law} law needs at least 3 rows with 2 distinct x values, got {len(keep)}")
    xs, ys, groups = x[keep], y[keep], strata[keep]
    b_floor = -np.log2(xs.min()) + 0.05
    b_grid = np.linspace(b_floor, B_MAX, 2048) if law == "size" else np.empty(0)
    estimates = _estimate(law, xs, ys, b_grid)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = resample(groups, rng)
        if len(np.unique(xs[pick])) >= 2:
            draw = _estimate(law, xs[pick], ys[pick], b_grid)
            if all(np.isfinite(v) for v in draw.values()):
                draws.append(draw)
    if not draws:  # every draw hit a single x: the data cannot say how uncertain the fit is
        draws = [estimates]
    tail = (1 - level) / 2
    intervals = {k: (float(np.quantile([d[k] for d in draws], tail)), float(np.quantile([d[k] for d in draws], 1 - tail)))
                 for k in estimates}
    kinds = {k: BOOTSTRAP for k in estimates}
    seeds = per_replicate(law, xs, ys, np.asarray(replicates)[keep], b_grid) if replicates is not None else []
    if len(seeds) >= 2:
        for k in estimates:
            own = interval([e[k] for e in seeds], level, log=(k == "C"))
            intervals[k], kinds[k] = wider(intervals[k], own)
    fitted = predict(law, estimates, ys if law == "power" else xs)
    quality = _r2(np.log2(xs), fitted) if law == "power" else _r2(np.log(ys), np.log(fitted))
    return Fit(law, estimates, intervals, quality, tuple(int(i) for i in keep),
               {"n": len(keep), "n_boot": len(draws), "x": tuple(float(v) for v in xs), "fits_per_seed": len(seeds)},
               tuple(draws), b_floor, kinds)


def paired_difference(law: str, name: str, a: tuple, b: tuple, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float, str]:
    """(estimate, low, high, interval kind) of a's fitted ``name`` minus b's, for two methods measured on the same
    fact sets. ``a`` and ``b`` are (x, y, replicate) arrays; one bootstrap draw picks, within each x,
    replicates with replacement and uses those fact sets for both methods, so the shared fact-set
    noise cancels (with one replicate per x it resamples the x values, for both alike). The
    interval is the wider of that bootstrap and a t interval over the per-replicate differences."""
    samples = []
    for xs, ys, reps in (a, b):
        xs, ys, reps = (np.asarray(v) for v in (xs, ys, reps))
        keep = _usable(law, xs.astype(float), ys.astype(float))
        samples.append({(float(xs[i]), reps[i].item()): (float(xs[i]), float(ys[i])) for i in keep})
    units = sorted(set(samples[0]) | set(samples[1]))
    unit_x = np.array([u[0] for u in units])
    b_grid = np.linspace(-np.log2(unit_x.min()) + 0.05, B_MAX, 2048) if law == "size" else np.empty(0)

    def difference(pick) -> float | None:
        values = []
        for sample in samples:
            rows = [sample[units[i]] for i in pick if units[i] in sample]
            xs, ys = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
            if len(rows) < 3 or len(np.unique(xs)) < 2:
                return None
            values.append(_estimate(law, xs, ys, b_grid)[name])
        return values[0] - values[1] if np.isfinite(values).all() else None

    estimate = difference(np.arange(len(units)))
    if estimate is None:
        raise ValueError(f"{law} law needs at least 3 rows with 2 distinct x values in both samples")
    rng = np.random.default_rng(seed)
    draws = [v for v in (difference(resample(unit_x, rng)) for _ in range(n_boot)) if v is not None]
    tail = (1 - level) / 2
    booted = (float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail)))
    per_seed = []  # the difference of the two laws fitted on one replicate's fact sets at a time
    for rep in sorted({u[1] for u in units}, key=str):
        value = difference([i for i, u in enumerate(units) if u[1] == rep])
        if value is not None:
            per_seed.append(value)
    (low, high), kind = wider(booted, interval(per_seed, level, log=False)) if len(per_seed) >= 2 else (booted, BOOTSTRAP)
    return estimate, low, high, kind


@dataclass(frozen=True)
class Law:
    """A law as an experiment declares it (``orchestrator.experiment.Law``): its name, formula,
    parameter symbols in report order, the fits table's column of each (the symbols C and c differ
    only by case, which SQL (DuckDB) does not tell apart) and the kinds of interval its fits report."""

    name: str
    formula: str
    parameters: tuple[str, ...]
    columns: dict[str, str]
    intervals: tuple[str, ...] = (BOOTSTRAP, PER_SEED)

    def fit(self, x, y, *, strata=None, replicates=None, n_boot: int = 1000) -> Fit:
        return fit(self.name, x, y, strata=strata, replicates=replicates, n_boot=n_boot)


SIZE = Law("size", "W = C·F·(log2 F + b)", ("C", "b"), {"C": "size_constant", "b": "size_offset"})
POWER = Law("power", "log2 F = s·log2 W + c", ("s", "c"), {"s": "power_slope", "c": "power_intercept"})
RHO = Law("rho", "log W = a + p·log(1/ρ)", ("p", "a"), {"p": "rho_exponent", "a": "rho_intercept"})
