"""Report figures fit for a paper: one style for every figure of every sweep.

- A colour per series value (e.g. method) fixed across all sweeps: the values every experiment
  declares as its series' choices, in registry order, index into one palette (``STYLE``).
- A marker per marker value (e.g. d) that depends on the value alone (``marker``), so d = 64 looks
  the same in every figure.
- Replicate seeds as small points, their median as a large one; cells that stored nothing as a
  cross at the largest size tried; fitted laws per group with their 95% bootstrap band; axis labels
  in words from the experiment; readable log ticks; legend outside the data; PNG (200 dpi) and PDF.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator  # noqa: E402

from orchestrator import registry  # noqa: E402
from orchestrator.atomic import write_atomic  # noqa: E402
from orchestrator.experiment import Experiment, FigureSpec  # noqa: E402

MARKERS = "osD^vP*Xh<>pHd8"
SIZES = (8, 16, 32, 48, 64, 90, 96, 128, 192, 256, 384, 512, 768, 1024)  # one marker each
PALETTE = ("#1b1b1b", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5")
DPI = 200
NOTES = ["fitted law, 95% band", "stored nothing up to this size", "one seed (small) / median over seeds (large)"]


def _series_values() -> list[str]:
    """Every value any experiment declares for a figure's series, in registry order: the colour key."""
    seen = []
    for experiment in registry.every().values():
        for spec in experiment.figures:
            param = experiment.params.get(spec.series)
            for value in (param.choices or ()) if param else ():
                if str(value) not in seen:
                    seen.append(str(value))
    return seen


STYLE = {value: PALETTE[i % len(PALETTE)] for i, value in enumerate(_series_values())}


def colour(value) -> str:
    """The fixed colour of a series value; values no experiment declares get a stable hashed colour."""
    if str(value) in STYLE:
        return STYLE[str(value)]
    return PALETTE[int(hashlib.sha256(str(value).encode()).hexdigest(), 16) % len(PALETTE)]


def marker(value) -> str:
    """A marker that depends on the value alone: the common sizes (d = 8 … 1024) each have their own,
    False/True the first two, anything else a stable hashed one."""
    if isinstance(value, (bool, np.bool_)):
        return MARKERS[int(value)]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number in SIZES:
        return MARKERS[SIZES.index(number)]
    return MARKERS[int(hashlib.sha256(str(value).encode()).hexdigest(), 16) % len(MARKERS)]


def _human(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:g}k"
    return f"{v:g}" if v >= 1 else f"{v:.2g}"


def _log_ticks(axis, low: float, high: float, values: np.ndarray, discrete: bool) -> None:
    """Ticks a reader can read on a log axis: a swept parameter's own values when there are few
    (F = 128, 256, …), else 1-2-5 steps, else evenly spaced round numbers within a decade."""
    distinct = np.unique(values[np.isfinite(values)])
    if discrete and 2 <= len(distinct) <= 8:
        ticks = distinct
    else:
        span = range(int(math.floor(math.log10(low))), int(math.ceil(math.log10(high))) + 1)
        ticks = np.array([m * 10.0 ** k for k in span for m in (1, 2, 5)])
        ticks = ticks[(ticks >= low) & (ticks <= high)]
        if len(ticks) < 3:  # less than about a decade: evenly spaced round numbers
            ticks = MaxNLocator(5).tick_values(low, high)
            ticks = ticks[(ticks >= low * 0.999) & (ticks <= high * 1.001) & (ticks > 0)]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _human(v)))
    axis.set_minor_locator(NullLocator())


def label(experiment: Experiment, column: str, inverted: bool = False) -> str:
    words = experiment.labels.get(column, column.replace("_", " "))
    return f"1 / ({words})" if inverted else words


def symbol(experiment: Experiment, column: str) -> str:
    """The short name of a column for legends: 'F' from 'facts stored, F'."""
    return label(experiment, column).rsplit(", ", 1)[-1]


def _save(fig, path: Path) -> list[Path]:
    """PNG and PDF, each written whole or not at all (a full disk leaves no partial figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # No creation date in the PDF: the same cells give the same bytes, so a regenerated reference
        # only changes in git where its data changed.
        return [write_atomic(path.with_suffix(suffix), lambda tmp, kind=suffix[1:]: fig.savefig(
                    tmp, format=kind, dpi=DPI, bbox_inches="tight",
                    metadata={"CreationDate": None} if kind == "pdf" else None)) for suffix in (".png", ".pdf")]
    finally:
        plt.close(fig)


def _curve(law, xs: np.ndarray, estimates: dict | None = None) -> np.ndarray:
    """A fitted law at the plotted x values, in the plotted y (power: x = W, y = F; ρ: x = 1/ρ, y = W)."""
    if law.fit.law == "power":
        return 2.0 ** law.fit.predict(xs, estimates)
    if law.fit.law == "rho":
        return law.fit.predict(1.0 / xs, estimates)
    return law.fit.predict(xs, estimates)


def _band(law, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    curves = np.array([_curve(law, xs, d) for d in law.fit.draws])
    return np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0)


def _matches(law, spec: FigureSpec, values: dict) -> bool:
    return (law.spec.law == spec.law and not law.fit.problems()
            and all(law.labels.get(k, v) == v for k, v in values.items() if k is not None))


def figure(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
           title: str, path: Path) -> list[Path]:
    """Draw one declared figure and save it as PNG and PDF; [] when the data do not vary along it."""
    fig = draw(frame, laws, spec, experiment, varying, title)
    return [] if fig is None else _save(fig, path)


def draw(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
         title: str):
    """The matplotlib figure of one declared figure, or None when the data do not vary along it."""
    needed = [spec.x, spec.y, spec.series] + ([spec.marker] if spec.marker else [])
    if not len(frame) or any(c not in frame for c in needed):
        return None
    if spec.needs and not any(k in varying for k in spec.needs):
        return None  # e.g. cost against ρ only means something when the sweep moves ρ (β or κ)
    data = frame.copy()
    x = pd.to_numeric(data[spec.x], errors="coerce").astype(float)
    data["_x"] = 1.0 / x if spec.invert_x else x
    data["_y"] = pd.to_numeric(data[spec.y], errors="coerce").astype(float)
    stored = data.dropna(subset=["_x", "_y"])
    failed = data[data["_x"].isna() & data["_y"].notna()]
    if spec.missing_x and spec.missing_x in failed:
        failed = failed.assign(_x=pd.to_numeric(failed[spec.missing_x], errors="coerce")).dropna(subset=["_x"])
    else:
        failed = failed.iloc[0:0]
    if stored["_x"].nunique() < 2:
        return None
    candidates = (spec.facet,) if isinstance(spec.facet, str) else spec.facet or ()
    facet_key = next((k for k in candidates if k in varying), None)
    facets = sorted(data[facet_key].unique(), key=str) if facet_key else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(5.2 * len(facets) + 1.8, 4.2), squeeze=False, sharey=True,
                             sharex=True)
    settings = [k for k in varying if k != "seed"]  # a median over seeds per setting
    handles = {}
    for ax, facet in zip(axes[0], facets):
        here = stored if facet is None else stored[stored[facet_key] == facet]
        lost = failed if facet is None else failed[failed[facet_key] == facet]
        for key_values, part in here.groupby([spec.series] + ([spec.marker] if spec.marker else []), sort=True):
            name, mark = (tuple(key_values) + (None,))[:2]
            c, m = colour(name), marker(mark) if spec.marker else "o"
            key = f"{name}" + (f", {symbol(experiment, spec.marker)} = {mark}" if spec.marker else "")
            if spec.table == "probes":
                for _, cell in part.groupby("cell_id"):
                    cell = cell.sort_values("_x")
                    ax.plot(cell["_x"], cell["_y"], color=c, marker=m, ms=3, lw=0.8, alpha=0.6)
                handles[key] = ax.plot([], [], color=c, marker=m, ms=4, lw=0.8)[0]
                continue
            groups = [k for k in settings if k in part]
            medians = part.groupby(groups, dropna=False)[["_x", "_y"]].median() if groups else part[["_x", "_y"]].median().to_frame().T
            if len(part) > len(medians):  # replicates: every seed as a small point
                ax.scatter(part["_x"], part["_y"], color=c, marker=m, s=10, alpha=0.35, linewidths=0)
            handles[key] = ax.scatter(medians["_x"], medians["_y"], color=c, marker=m, s=34, zorder=3)
            values = {spec.series: name, spec.marker: mark, facet_key: facet}
            for law in (law for law in laws if _matches(law, spec, values)):
                xs = np.geomspace(part["_x"].min(), part["_x"].max(), 60)
                low, high = _band(law, xs)
                ax.fill_between(xs, low, high, color=c, alpha=0.15, lw=0)
                ax.plot(xs, _curve(law, xs), color=c, lw=1.1)
                handles[NOTES[0]] = ax.plot([], [], color="0.3", lw=1.1)[0]
        lost_series = list(lost.groupby(spec.series))
        for i, (name, part) in enumerate(lost_series):  # concentric when series share a search's top
            ax.scatter(part["_x"], part["_y"], color=colour(name), marker="x", zorder=3 + i, lw=1.2,
                       s=40 * (1 + 0.9 * (len(lost_series) - 1 - i)))
            handles[NOTES[1]] = ax.scatter([], [], color="0.3", marker="x", s=40)
        for name, values, log, axis, scale, limits in (  # shared by the facets: one frame for every panel
                (spec.x, pd.concat([stored["_x"], failed["_x"]]), spec.log_x, ax.xaxis, ax.set_xscale, ax.set_xlim),
                (spec.y, pd.concat([stored["_y"], failed["_y"]]), spec.log_y and spec.table != "probes", ax.yaxis,
                 ax.set_yscale, ax.set_ylim)):
            if not len(values):
                continue
            low, high = values.min(), values.max()
            if log:
                scale("log")
                _log_ticks(axis, low, high, values.to_numpy(), discrete=name in experiment.params)
                limits(low / 1.25, high * 1.25)  # the data set the frame; a wide band is clipped
            else:
                pad = 0.05 * (high - low or 1.0)
                limits(low - pad, high + pad)
        ax.set_xlabel(label(experiment, spec.x, spec.invert_x))
        if facet is not None:
            ax.set_title(f"{symbol(experiment, facet_key)} = {facet}", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel(label(experiment, spec.y))
    if len(stored.get("seed", pd.Series(dtype=float)).unique()) > 1 and spec.table != "probes":
        handles[NOTES[2]] = axes[0][0].scatter([], [], color="0.3", s=10)
    fig.suptitle(title, fontsize=10)
    notes = [k for k in handles if k in NOTES]  # after the series, in a fixed order
    order = [k for k in handles if k not in NOTES] + sorted(notes, key=NOTES.index)
    fig.legend([handles[k] for k in order], order, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=7,
               frameon=False)
    fig.tight_layout()
    return fig
