"""Report figures a reader takes in at a glance: one style for every figure of every sweep.

A figure is declared by the experiment (``FigureSpec``) and drawn by its ``kind``:

- ``points``: one median over seeds per setting (large), each seed small, a fitted law per group
  drawn only over the range it was fitted on, with its 95% band; settings whose seeds stored nothing
  are crosses at the largest size tried (side by side, with a count), and a setting where only
  some seeds stored is drawn hollow.
- ``curves``: y along x per cell (a search's probes): the median over seeds with a min–max band,
  never one line per seed; one panel per series value, coloured by the ``group`` value (e.g. F).
- ``intervals``: y per value of a categorical x, one dodged mark per series: median and 95%
  interval over seeds, the seeds as dots.

Every setting a figure does not otherwise show (β, κ, …) joins its group and is labelled, so no two
settings look alike. A figure is drawn only when the sweep varies what it is about (``needs``), a
panel only when it has two x values, so no empty or one-point panel is drawn. Titles are words, the
legend sits below the panels, a caption line names the recipe, threshold and seeds, and no text
leaves the canvas. Colours per series value and markers per marker value are fixed across sweeps.
"""
from __future__ import annotations

import hashlib
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from factmlp.scaling import interval  # noqa: E402
from orchestrator import registry  # noqa: E402
from orchestrator.atomic import write_atomic  # noqa: E402
from orchestrator.experiment import Experiment, FigureSpec  # noqa: E402
from orchestrator.replicates import REPLICATE  # noqa: E402

MARKERS = "osD^vP*Xh<>pHd8"
LINESTYLES = ("-", "--", ":", "-.")
SIZES = (8, 16, 32, 48, 64, 90, 96, 128, 192, 256, 384, 512, 768, 1024)  # one marker each
PALETTE = ("#1b1b1b", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5")
DPI = 200
PANEL_SIZE = (3.7, 3.0)  # inches per panel: text stays readable at any number of panels
COLUMNS = 3
NOTES = {"law": "fitted law over its measured range, 95% band", "lost": "stored nothing up to this size (×n seeds)",
         "partial": "hollow: some seeds stored nothing (median of the rest)",
         "seeds": "median over seeds (large), one seed (small)", "band": "median over seeds, min–max band",
         "interval": "median and 95% interval over seeds; dots: seeds"}


def _series_values() -> list[str]:
    """Every value any experiment declares for a figure's series, in registry order: the colour key."""
    seen = []
    for experiment in registry.every().values():
        for spec in experiment.reporting.figures:
            param = experiment.params.get(spec.series)
            for value in (getattr(param, "choices", None) or ()) if param else ():
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


def human(v: float) -> str:
    """A tick label: 500, 2000, 20k, 1M, 1.5M (never 1000k), 0.05."""
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{float(f'{v / 1e6:.3g}'):g}M"
    if abs(v) >= 10_000:
        return f"{float(f'{v / 1e3:.3g}'):g}k"
    return f"{v:g}" if abs(v) >= 1 else f"{v:.2g}"


def log_ticks(low: float, high: float, values: np.ndarray, discrete: bool) -> np.ndarray:
    """Ticks evenly spread on a log axis: a swept parameter's own values when there are few
    (F = 128, 256, …); powers of ten over many decades; 1-2-5 over one or two; else about four
    round numbers spaced geometrically (never 80k, 84k, 88k crowded at one end)."""
    distinct = np.unique(values[np.isfinite(values) & (values > 0)])
    if discrete and 2 <= len(distinct) <= 8:
        return distinct
    decades = math.log10(high / low)
    span = range(int(math.floor(math.log10(low))), int(math.ceil(math.log10(high))) + 1)
    for steps in ((1,), (1, 2, 5)) if decades >= 2.5 else ((1, 2, 5),) if decades >= 0.9 else ():
        ticks = np.array([m * 10.0 ** k for k in span for m in steps])
        ticks = ticks[(ticks >= low) & (ticks <= high)]
        if len(ticks) >= 3:
            return ticks
    for mantissas in ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8), np.arange(10, 100) / 10):  # round, else 2 digits
        nice = np.array([m * 10.0 ** k for k in span for m in mantissas])
        nice = nice[(nice >= low) & (nice <= high)]
        if len(nice) >= 3:
            break
    if len(nice) <= 4:
        return nice
    picks = [nice[np.argmin(np.abs(np.log(nice / t)))] for t in np.geomspace(nice[0], nice[-1], 4)]
    return np.unique(picks)


def label(experiment: Experiment, column: str, inverted: bool = False) -> str:
    words = experiment.reporting.labels.get(column, column.replace("_", " "))
    return f"1 / ({words})" if inverted else words


def symbol(experiment: Experiment, column: str) -> str:
    """The short name of a column for legends: 'F' from 'facts stored, F'."""
    return label(experiment, column).rsplit(", ", 1)[-1]


def _text(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return f"{int(value)}"
    return human(float(value)) if isinstance(value, (int, float, np.number)) else str(value)


def setting_text(experiment: Experiment, values: dict) -> str:
    """'β = 2, κ = 10' for the settings a mark stands for (unset ones, e.g. κ of a spike cell, left out)."""
    return ", ".join(f"{symbol(experiment, k)} = {_text(v)}" for k, v in values.items() if v == v and v is not None)


def _save(fig, path: Path) -> list[Path]:
    """PNG and PDF, each written whole or not at all (a full disk leaves no partial figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # No creation date in the PDF: the same cells give the same bytes, so a regenerated reference
        # only changes in git where its data changed.
        return [write_atomic(path.with_suffix(suffix), lambda tmp, kind=suffix[1:]: fig.savefig(
                    tmp, format=kind, dpi=DPI, metadata={"CreationDate": None} if kind == "pdf" else None))
                for suffix in (".png", ".pdf")]
    finally:
        plt.close(fig)


def _curve(law, xs: np.ndarray, estimates: dict | None = None) -> np.ndarray:
    """A fitted law at the plotted x values, in the plotted y (power: x = W, y = F; ρ: x = 1/ρ, y = W)."""
    if law.fit.law == "power":
        return 2.0 ** law.fit.predict(xs, estimates)
    if law.fit.law == "rho":
        return law.fit.predict(1.0 / xs, estimates)
    return law.fit.predict(xs, estimates)


def _matches(law, spec: FigureSpec, values: dict) -> bool:
    return (law.spec.law == spec.law and not law.fit.problems()
            and all(law.labels.get(k, v) == v for k, v in values.items() if k is not None))


class Layout:
    """Which column each visual channel shows, decided from what the sweep varies."""

    def __init__(self, frame: pd.DataFrame, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...]):
        present = [k for k in varying if k in frame and k != REPLICATE]
        moving = [k for k in present if frame[k].nunique(dropna=True) > 1]
        candidates = (spec.facet,) if isinstance(spec.facet, str) else spec.facet or ()
        self.facet = next((k for k in candidates if k in moving), None)
        self.marker = spec.marker if spec.marker in moving else None
        self.series = spec.series
        shown = {spec.x, spec.y, self.series, self.marker, self.facet}
        preferred = (spec.group,) if isinstance(spec.group, str) else spec.group or ()
        # Every setting not shown otherwise is a group, so no two settings share a look.
        self.group = [k for k in preferred if k in moving and k not in shown] + [
            k for k in moving if k not in shown and k not in preferred]
        self.settings = present  # a median over seeds per setting
        self.fixed = [k for k in (spec.series, spec.marker, self.facet, *preferred) if k and k in frame
                      and k not in moving and frame[k].nunique(dropna=True) == 1]
        self.curves_by_group = spec.kind == "curves" and bool(self.group)
        self.colour_by_group = False  # points with one series: a shade per group value (set by _panels)
        self.all_at_top = None  # with ``ceiling``: the top, when every value sits at it (set by draw)
        self.dodge = 1.1  # the factor between side-by-side crosses on a log x (set from the x range)


def _prepare(frame: pd.DataFrame, spec: FigureSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stored rows with numeric _x, _y; rows that stored nothing, at ``missing_x``)."""
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
    return stored, failed


def _ceiling(stored: pd.DataFrame, spec: FigureSpec) -> tuple[bool, float | None]:
    """(draw the shortfall top − y, the floor where a shortfall of 0 is drawn) when every value sits
    within 5% of ``top`` and some below it (all at ``top``: the caption says so instead)."""
    if not (spec.ceiling and spec.top is not None and len(stored)):
        return False, None
    shortfall = spec.top - stored["_y"]
    if (shortfall > 0.05 * abs(spec.top)).any() or not (shortfall > 0).any():
        return False, None
    return True, float(shortfall[shortfall > 0].min()) / 3


def _fixes_x(stored: pd.DataFrame, keys: list[str], settings: list[str]) -> bool:
    """Whether each value of ``keys`` sits at one x, seeds' medians taken (β sets ρ of the data
    whatever the method)."""
    if not keys:
        return True
    settings = [k for k in dict.fromkeys(keys + settings) if k in stored]
    medians = stored.groupby(settings, dropna=False)["_x"].median().reset_index()
    for _, part in medians.groupby(keys, dropna=False):
        x = part["_x"]
        if (x > 0).all() and x.max() > x.min() * 1.03 or not (x > 0).all() and x.max() - x.min() > 1e-9:
            return False
    return True


def _panels(stored: pd.DataFrame, layout: Layout, spec: FigureSpec) -> list[dict]:
    """One filter ({column: value}) per panel: a facet value; in "curves" also a series value; in
    "points", a group value when the group does not fix x and several series share the colours. A panel with
    one x (e.g. ρ when the spike is on the keys, whatever β) is dropped: nothing to read."""
    keys = [layout.facet] if layout.facet else []
    if layout.curves_by_group:
        keys.append(layout.series)
    elif spec.kind == "points" and layout.group and stored[layout.series].nunique() == 1:
        layout.colour_by_group = True  # one series: colour is free, a shade per group value
    elif spec.kind == "points" and layout.group and not _fixes_x(stored, keys + layout.group, layout.settings):
        keys += layout.group  # labels above the frame would not sit over their marks: a panel each
        layout.group = []
    out = []
    for values, part in _key_rows(stored, keys):
        if spec.kind == "curves":  # a curve needs two x values of one cell
            along = part.groupby("cell_id")["_x"].nunique().max() if "cell_id" in part else part["_x"].nunique()
        else:  # points: two settings at different x (seeds' medians, to 3 significant digits)
            settings = [k for k in layout.settings if k in part]
            medians = part.groupby(settings, dropna=False)["_x"].median() if settings else part["_x"]
            along = len({float(f"{v:.3g}") for v in medians})
        if along >= 2:
            out.append(dict(zip(keys, values)))
    return out


def _subset(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    for k, v in where.items():
        frame = frame[(frame[k] == v) | (frame[k].isna() & (v != v))] if k in frame else frame
    return frame


def _group_values(frame: pd.DataFrame, layout: Layout) -> list[tuple]:
    if not layout.group:
        return [()]
    rows = frame[layout.group].drop_duplicates().itertuples(index=False, name=None)
    return sorted(rows, key=lambda r: tuple((0, float(v)) if isinstance(v, (int, float, np.number)) and v == v
                                            else (1, str(v)) for v in r))


def _shades(values: list[tuple]) -> dict:
    cmap = plt.get_cmap("viridis")
    n = len(values)
    return {v: cmap(0.1 + 0.75 * (i / max(n - 1, 1))) for i, v in enumerate(values)}


def _key_rows(frame: pd.DataFrame, keys: list[str]):
    if not keys:
        yield (), frame
        return
    for key, part in frame.groupby(keys, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), part


class Legend:
    """One entry per label: series and groups, then markers and line styles, then notes and references,
    each in order of first use."""

    def __init__(self):
        self.entries: dict[str, object] = {}
        self.ranks: dict[str, int] = {}

    def add(self, text: str, rank: int = 0, **style) -> None:
        """``rank``: 0 a series or group, 1 a marker or line style, notes always last."""
        if text not in self.entries:
            self.entries[text] = Line2D([], [], **{"color": "0.3", "lw": 0, **style})
            self.ranks[text] = 2 if text in NOTES.values() or text.startswith("reference") else rank

    def notes_last(self) -> list[str]:
        return sorted(self.entries, key=lambda k: self.ranks[k])  # stable: first use within a rank


def _points(ax, stored, failed, laws, spec, experiment, layout: Layout, legend: Legend, facet) -> None:
    group_keys = [k for k in layout.group if stored[k].nunique(dropna=True) > 1]  # κ of spike cells: not a group
    shades = _shades(_group_values(stored, layout)) if layout.colour_by_group and group_keys else {}
    labels_at = {}
    for (name, *rest), part in _key_rows(stored, [layout.series] + ([layout.marker] if layout.marker else [])):
        mark = rest[0] if rest else None
        c, m = colour(name), marker(mark) if layout.marker else "o"
        if not shades:
            legend.add(str(name), color=c, marker="o", ms=6)
        if layout.marker:
            legend.add(f"{symbol(experiment, layout.marker)} = {_text(mark)}", 1, marker=m, ms=6, color="0.35")
        lost_here = failed[(failed[layout.series] == name) & ((failed[layout.marker] == mark) if layout.marker
                                                               else True)]
        settings = [k for k in layout.settings if k in part]
        medians = []
        for values, cells in _key_rows(part, settings):
            lost = lost_here
            for k, v in zip(settings, values):
                lost = lost[(lost[k] == v) | (lost[k].isna() & (v != v))] if k in lost else lost
            here = dict(zip(settings, values))
            shade = shades.get(tuple(here.get(k) for k in layout.group), c) if shades else c
            medians.append((float(cells["_x"].median()), float(cells["_y"].median()), len(lost) > 0, here, shade))
            if len(cells) > 1:
                ax.scatter(cells["_x"], cells["_y"], color=shade, marker=m, s=9, alpha=0.35, linewidths=0)
                legend.add(NOTES["seeds"], marker="o", ms=3, color="0.35")
        for x, y, partial, values, shade in medians:
            ax.scatter([x], [y], marker=m, s=36, zorder=3, edgecolors=shade, linewidths=1.2,
                       facecolors="white" if partial else shade)
            if shades:
                legend.add(setting_text(experiment, {k: values.get(k) for k in layout.group}), color=shade,
                           marker="o", ms=6)
            if partial:
                legend.add(NOTES["partial"], marker="o", ms=6, markerfacecolor="white", markeredgecolor="0.3")
            if group_keys and not shades:
                labels_at.setdefault(setting_text(experiment, {k: values.get(k) for k in group_keys}), []).append(
                    (x, y))
        for law in (law for law in laws if _matches(law, spec, {layout.series: name, layout.marker: mark,
                                                                layout.facet: facet})):
            _law(ax, law, part, c)
            legend.add(NOTES["law"], color="0.3", lw=1.1)
    _group_labels(ax, labels_at, spec)
    _lost(ax, failed, layout, legend, layout.dodge)


def _law(ax, law, part: pd.DataFrame, c) -> None:
    """The fitted law and its 95% band, only where both x and y lie within the measured range."""
    x0, x1, y0, y1 = part["_x"].min(), part["_x"].max(), part["_y"].min(), part["_y"].max()
    xs = np.geomspace(x0, x1, 80) if x0 > 0 else np.linspace(x0, x1, 80)
    ys = _curve(law, xs)
    inside = (ys >= y0 * (1 - 1e-9)) & (ys <= y1 * (1 + 1e-9))
    if inside.sum() < 2:
        return
    curves = np.array([_curve(law, xs, d) for d in law.fit.draws]) if law.fit.draws else None
    if curves is not None and len(curves):
        low, high = np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0)
        ax.fill_between(xs[inside], np.clip(low[inside], y0, y1), np.clip(high[inside], y0, y1), color=c,
                        alpha=0.15, lw=0)
    ax.plot(xs[inside], ys[inside], color=c, lw=1.1)


def _group_labels(ax, labels_at: dict, spec: FigureSpec) -> None:
    """Name each group (β = 2) once, inside the top of the panel at its x; groups closer than 4% of
    the axis share one label (β = 0, 1)."""
    if not labels_at or (len(labels_at) == 1 and "" in labels_at):
        return
    at = sorted((float(np.median([x for x, _ in points])), text) for text, points in labels_at.items())
    log = spec.log_x and all(x > 0 for x, _ in at)
    pos = [math.log(x) if log else x for x, _ in at]
    near = 0.1 * ((max(pos) - min(pos)) or 1.0)  # about a label's width
    merged = []
    for p, (x, text) in zip(pos, at):
        if merged and p - merged[-1][0] < near:
            merged[-1][2].append(text.split(" = ", 1)[-1])
        else:
            merged.append([p, x, [text]])
    upright = len(merged) > 3  # many: each label turned upright, so none runs into the next
    for _, x, texts in merged:  # in a strip above the frame, off the data (the title makes room)
        ax.annotate(", ".join(texts), (x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 2),
                    textcoords="offset points", fontsize=6, ha="center", va="bottom", color="0.3",
                    rotation=90 if upright else 0)


def _title_pad(ax) -> float:
    """Room above the frame for the group labels (upright ones need their length)."""
    upright = [t for t in ax.texts if t.get_rotation() == 90]
    if upright:
        return 6 + 3.4 * max(len(t.get_text()) for t in upright)
    return 12 if ax.texts else 4


def _lost(ax, failed: pd.DataFrame, layout: Layout, legend: Legend, dodge: float) -> None:
    """Cells that stored nothing: one cross per series and y at the largest size tried, series side by
    side (not one glyph over another) and the number of seeds beside it."""
    if not len(failed):
        return
    for y, at_y in failed.groupby("_y"):
        names = sorted(at_y[layout.series].unique(), key=str)
        for i, name in enumerate(names):
            part = at_y[at_y[layout.series] == name]
            x = float(part["_x"].max()) * dodge ** (i - (len(names) - 1) / 2)
            ax.scatter([x], [y], color=colour(name), marker="x", s=40, lw=1.4, zorder=4)
            if len(part) > 1:
                ax.annotate(f"×{len(part)}", (x, y), xytext=(0, -9), textcoords="offset points", fontsize=6,
                            ha="center", color=colour(name))
        legend.add(NOTES["lost"], marker="x", ms=6, color="0.3")


def _curves(ax, stored, spec, experiment, layout: Layout, legend: Legend, series) -> None:
    """Per setting, y along x (each cell interpolated on log x within its own probed range), the
    median over seeds as a line and the min–max over seeds as a band."""
    shades = _shades(_group_values(stored, layout)) if layout.group else {}
    for group in shades or [()]:
        here = stored
        for k, v in zip(layout.group, group):
            here = here[(here[k] == v) | (here[k].isna() & (v != v))]
        for (name, *rest), part in _key_rows(here, [layout.series] + ([layout.marker] if layout.marker else [])):
            mark = rest[0] if rest else None
            style = LINESTYLES[sorted(stored[layout.marker].unique(), key=str).index(mark) % 4] if mark is not None \
                else "-"
            c = shades[group] if shades else colour(name)
            grid, lines = _common_grid(part)
            if grid is None:
                continue
            median = np.nanmedian(lines, axis=0)
            ax.plot(grid, median, color=c, lw=1.3, ls=style)
            if len(lines) > 1:
                covered = np.sum(~np.isnan(lines), axis=0) >= 2
                low, high = np.nanmin(lines, axis=0), np.nanmax(lines, axis=0)
                ax.fill_between(grid, np.where(covered, low, np.nan), np.where(covered, high, np.nan), color=c,
                                alpha=0.18, lw=0)
                legend.add(NOTES["band"], color="0.3", lw=1.3)
            if shades:
                legend.add(setting_text(experiment, dict(zip(layout.group, group))), color=c, lw=2)
            else:
                legend.add(str(name), color=c, lw=2)
            if layout.marker:
                legend.add(f"{symbol(experiment, layout.marker)} = {_text(mark)}", 1, color="0.35", lw=1.3, ls=style)


def _common_grid(part: pd.DataFrame):
    """(x grid, one row per cell): each cell's y interpolated on log x inside its own x range."""
    cells = [c.sort_values("_x").groupby("_x")["_y"].median() for _, c in part.groupby("cell_id")] \
        if "cell_id" in part else [part.sort_values("_x").groupby("_x")["_y"].median()]
    cells = [c for c in cells if len(c)]
    if not cells:
        return None, None
    grid = np.unique(np.concatenate([c.index.to_numpy(dtype=float) for c in cells]))
    log = np.log(grid) if (grid > 0).all() else grid
    rows = []
    for c in cells:
        xs = np.log(c.index.to_numpy(dtype=float)) if (grid > 0).all() else c.index.to_numpy(dtype=float)
        row = np.interp(log, xs, c.to_numpy(dtype=float))
        row[(log < xs.min()) | (log > xs.max())] = np.nan
        rows.append(row)
    return grid, np.array(rows)


def _intervals(ax, stored, spec, experiment, layout: Layout, legend: Legend, positions: dict) -> None:
    """Per x value and series: the median and 95% interval over seeds, series side by side."""
    names = sorted(stored[layout.series].unique(), key=str)
    width = 0.8 / max(len(names), 1)
    bounds = (0.0, 1.0) if spec.y in experiment.reporting.fractions else None
    for i, name in enumerate(names):
        c = colour(name)
        for x, part in stored[stored[layout.series] == name].groupby("_x"):
            values = part["_y"].to_numpy(dtype=float)
            at = positions[x] + (i - (len(names) - 1) / 2) * width
            median = float(np.median(values))
            ax.scatter(np.full(len(values), at), values, color=c, s=8, alpha=0.4, linewidths=0)
            if len(values) >= 2:
                low, high = interval(values, bounds=bounds)
                if low == low and high == high:
                    # The interval is of the mean (logit scale): it need not contain the median.
                    ax.vlines(at, low, high, color=c, lw=1.2)
                    ax.hlines([low, high], at - width * 0.2, at + width * 0.2, color=c, lw=1.2)
            ax.scatter([at], [median], color=c, marker="o", s=30, zorder=3)
        legend.add(str(name), color=c, marker="o", ms=6)
    legend.add(NOTES["interval"], color="0.3", marker="o", ms=5, lw=1)


def _axis(ax_list, which: str, values: pd.Series, log: bool, experiment: Experiment, column: str,
          top: float | None = None) -> None:
    values = values[np.isfinite(values)]
    if not len(values):
        return
    low, high = float(values.min()), float(values.max())
    for ax in ax_list:
        axis = ax.xaxis if which == "x" else ax.yaxis
        set_scale, set_limits = (ax.set_xscale, ax.set_xlim) if which == "x" else (ax.set_yscale, ax.set_ylim)
        if log and low > 0:
            set_scale("log")
            pad = max(1.06, (high / low) ** 0.05)
            ticks = log_ticks(low / pad, high * pad, values.to_numpy(), discrete=column in experiment.params)
            set_limits(low / pad, high * pad)
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
            axis.set_minor_locator(NullLocator())
        else:
            pad = 0.05 * (high - low or abs(high) or 1.0)
            upper = high + pad if top is None else min(high + pad, top + 0.02 * (high - low or 1.0))
            set_limits(low - pad, upper)


def _canvas(n: int, caption_lines: int):
    """A canvas of ``n`` panels of a fixed size (at most three a row) above a strip for the caption."""
    columns = min(n, COLUMNS)
    rows = math.ceil(n / columns)
    strip = 0.14 * caption_lines + 0.1 if caption_lines else 0.0
    size = (PANEL_SIZE[0] * columns + (1.0 if columns == 1 else 0.4), PANEL_SIZE[1] * rows + 1.4 + strip)
    fig = plt.figure(figsize=size, layout="constrained")
    if strip:
        top, bottom = fig.subfigures(2, 1, height_ratios=[size[1] - strip, strip])
    else:
        top, bottom = fig, None
    axes = top.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        top.delaxes(ax)
    return fig, top, bottom, flat[:n]


def _runs(values) -> str:
    """'0–9' for consecutive integers, else the values listed."""
    numbers = [v for v in values if isinstance(v, (int, float, np.number)) and float(v).is_integer()]
    if len(numbers) == len(values) and len(values) > 2 and max(values) - min(values) == len(values) - 1:
        return f"{_text(min(values))}–{_text(max(values))}"
    return ", ".join(_text(v) for v in values)


def caption_text(frame: pd.DataFrame, experiment: Experiment, layout: Layout, ceiling_floor) -> str:
    """Recipe and threshold (the experiment's words), settings the figure holds fixed, and the seeds."""
    parts = []
    if experiment.reporting.caption is not None:
        text = experiment.reporting.caption(frame.to_dict("records"))
        if text:
            parts.append(text)
    fixed = {k: frame[k].dropna().iloc[0] for k in layout.fixed if k in frame and frame[k].notna().any()}
    if fixed:
        parts.append(setting_text(experiment, fixed))
    if REPLICATE in frame:
        seeds = sorted(frame[REPLICATE].dropna().unique())
        per = frame.groupby(layout.settings or [REPLICATE], dropna=False)[REPLICATE].nunique() if layout.settings \
            else pd.Series([len(seeds)])
        spread = f"{int(per.min())}" if per.min() == per.max() else f"{int(per.min())}–{int(per.max())}"
        parts.append(f"seeds {_runs(seeds)} ({spread} per setting)")
    if ceiling_floor is not None:
        parts.append(f"a shortfall of 0 is drawn at {human(ceiling_floor)}")
    if layout.all_at_top is not None:
        parts.append(f"every value at the ceiling {layout.all_at_top:g}")
    return "; ".join(parts)


def figure(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
           title: str, path: Path) -> list[Path]:
    """Draw one declared figure and save it as PNG and PDF; [] when the data do not vary along it."""
    fig = draw(frame, laws, spec, experiment, varying, title)
    return [] if fig is None else _save(fig, path)


def draw(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
         title: str = ""):
    """The matplotlib figure of one declared figure, or None when the sweep does not vary what it
    shows (``needs``) or no panel would have two x values."""
    needed = [spec.x, spec.y, spec.series] + ([spec.marker] if spec.marker else [])
    if not len(frame) or any(c not in frame for c in needed):
        return None
    if spec.needs and not any(k in varying and frame[k].nunique(dropna=True) > 1 for k in spec.needs if k in frame):
        return None  # e.g. F against W means nothing at one F; cost against ρ only when the sweep moves ρ
    stored, failed = _prepare(frame, spec)
    layout = Layout(frame, spec, experiment, varying)
    at_ceiling, floor = _ceiling(stored, spec)
    layout.all_at_top = spec.top if spec.ceiling and len(stored) and (stored["_y"] == spec.top).all() else None
    if at_ceiling:
        stored = stored.assign(_y=np.maximum(spec.top - stored["_y"], floor))
        failed = failed.iloc[0:0]
    span = pd.concat([stored["_x"], failed["_x"]])
    span = span[span > 0]
    layout.dodge = (span.max() / span.min()) ** 0.04 if len(span) and span.min() > 0 else 1.1
    panels = _panels(stored, layout, spec)
    if not panels:
        return None
    caption = caption_text(frame, experiment, layout, floor if at_ceiling else None)
    width_chars = int((PANEL_SIZE[0] * min(len(panels), COLUMNS) + (1.0 if len(panels) == 1 else 0)) * 16)
    caption_lines = textwrap.wrap(caption, width_chars) if caption else []
    legend = Legend()
    positions = {x: i for i, x in enumerate(sorted(stored["_x"].unique()))} if spec.kind == "intervals" else {}
    fig, top, bottom, axes = _canvas(len(panels), len(caption_lines))
    for ax, where in zip(axes, panels):
        here, lost = _subset(stored, where), _subset(failed, where)
        facet, series = where.get(layout.facet), where.get(layout.series) if layout.curves_by_group else None
        if spec.kind == "curves":
            _curves(ax, here, spec, experiment, layout, legend, series)
        elif spec.kind == "intervals":
            _intervals(ax, here, spec, experiment, layout, legend, positions)
        else:
            _points(ax, here, lost, laws, spec, experiment, layout, legend, facet)
        if spec.reference is not None and not at_ceiling:
            ax.axhline(spec.reference, color="0.45", lw=0.9, ls=(0, (4, 3)), zorder=1)
            legend.add(f"reference {spec.reference:g}", color="0.45", lw=0.9, ls=(0, (4, 3)))
        if at_ceiling and spec.reference is not None:
            ax.axhline(spec.top - spec.reference, color="0.45", lw=0.9, ls=(0, (4, 3)), zorder=1)
            legend.add(f"reference {spec.reference:g} (shortfall {spec.top - spec.reference:g})", color="0.45",
                       lw=0.9, ls=(0, (4, 3)))
        words = [str(series)] if series is not None else []
        words += [setting_text(experiment, {k: v}) for k, v in where.items() if k != layout.series]
        if words or ax.texts:
            ax.set_title(", ".join(words), fontsize=9, pad=_title_pad(ax))
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=8)
    x_values = pd.concat([stored["_x"], failed["_x"]])
    if len(failed):  # the side-by-side crosses stay inside the frame
        x_values = pd.concat([x_values, failed["_x"] * layout.dodge ** (failed[layout.series].nunique() / 2)])
    if spec.kind == "intervals":
        for ax in axes:
            ax.set_xlim(-0.6, len(positions) - 0.4)
            ax.set_xticks(range(len(positions)), [_text(x) for x in positions])
        _axis(axes, "y", stored["_y"], spec.log_y, experiment, spec.y, spec.top)
    else:
        _axis(axes, "x", x_values, spec.log_x, experiment, spec.x)
        y_values = pd.concat([stored["_y"], failed["_y"]])
        _axis(axes, "y", y_values, spec.log_y or at_ceiling, experiment, spec.y,
              None if at_ceiling else spec.top)
    y_words = label(experiment, spec.y)
    if at_ceiling:
        y_words = f"{spec.top:g} − {y_words}"
    columns = min(len(panels), COLUMNS)
    for i, ax in enumerate(axes):
        if i % columns == 0:
            ax.set_ylabel(y_words, fontsize=9)
        if i >= len(axes) - columns:
            ax.set_xlabel(label(experiment, spec.x, spec.invert_x), fontsize=9)
            ax.xaxis.set_tick_params(labelbottom=True)
    if title:
        top.suptitle(textwrap.fill(title, int(fig.get_size_inches()[0] * 11)), fontsize=11)
    order = legend.notes_last()
    if order:  # below the panels: never over the data, never as wide as the data
        top.legend([legend.entries[k] for k in order], [textwrap.fill(k, 40) for k in order], fontsize=7,
                   loc="outside lower center", ncols=min(len(order), 2 * columns), frameon=False,
                   handlelength=1.8, columnspacing=1.2)
    if bottom is not None:
        bottom.text(0.01, 0.5, "\n".join(caption_lines), fontsize=7, color="0.25", ha="left", va="center")
    return fig
