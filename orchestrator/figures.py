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
leaves the canvas. Colours per series value and markers per marker value are fixed across sweeps
(``orchestrator.figure_style``: how a figure looks; this module: what it shows). A figure learns
what to draw only from the experiment it is given (its ``FigureSpec``, labels, caption) and a fitted
law only from the law's own fit (``curve`` and ``band``).
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

from orchestrator.experiment import Experiment, FigureSpec
from orchestrator.figure_style import (COLUMNS, LINESTYLES, NOTES, PANEL_SIZE, Legend, axis, canvas, colour, human,
                                       label, marker, runs, save, setting_text, symbol, title_pad, value_text)
from orchestrator.replicates import REPLICATE
from orchestrator.statistics import interval


def _matches(law, spec: FigureSpec, values: dict) -> bool:
    return (law.spec.law.name == spec.law and not law.fit.problems()
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
    cmap = colormaps["viridis"]
    n = len(values)
    return {v: cmap(0.1 + 0.75 * (i / max(n - 1, 1))) for i, v in enumerate(values)}


def _key_rows(frame: pd.DataFrame, keys: list[str]):
    if not keys:
        yield (), frame
        return
    for key, part in frame.groupby(keys, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), part


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
            legend.add(f"{symbol(experiment, layout.marker)} = {value_text(mark)}", 1, marker=m, ms=6, color="0.35")
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
    """The fitted law and its 95% band (the fit's own ``curve`` and ``band``), only where both x and y
    lie within the measured range."""
    x0, x1, y0, y1 = part["_x"].min(), part["_x"].max(), part["_y"].min(), part["_y"].max()
    xs = np.geomspace(x0, x1, 80) if x0 > 0 else np.linspace(x0, x1, 80)
    ys = law.fit.curve(xs)
    inside = (ys >= y0 * (1 - 1e-9)) & (ys <= y1 * (1 + 1e-9))
    if inside.sum() < 2:
        return
    low, high = law.fit.band(xs)
    ax.fill_between(xs[inside], np.clip(low[inside], y0, y1), np.clip(high[inside], y0, y1), color=c, alpha=0.15, lw=0)
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
                legend.add(f"{symbol(experiment, layout.marker)} = {value_text(mark)}", 1, color="0.35", lw=1.3, ls=style)


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
        parts.append(f"seeds {runs(seeds)} ({spread} per setting)")
    if ceiling_floor is not None:
        parts.append(f"a shortfall of 0 is drawn at {human(ceiling_floor)}")
    if layout.all_at_top is not None:
        parts.append(f"every value at the ceiling {layout.all_at_top:g}")
    return "; ".join(parts)


def figure(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
           title: str, path: Path) -> list[Path]:
    """Draw one declared figure and save it as PNG and PDF; [] when the data do not vary along it."""
    fig = draw(frame, laws, spec, experiment, varying, title)
    return [] if fig is None else save(fig, path)


@dataclass(frozen=True)
class Marks:
    """The rows a figure draws: ``stored`` (numeric ``_x``, ``_y``), ``failed`` (stored nothing: drawn
    at ``missing_x``) and ``floor``, set when y is drawn as the shortfall ``top − y`` (see ``_ceiling``)."""

    stored: pd.DataFrame
    failed: pd.DataFrame
    floor: float | None = None

    @property
    def at_ceiling(self) -> bool:
        return self.floor is not None


def draw(frame: pd.DataFrame, laws: list, spec: FigureSpec, experiment: Experiment, varying: tuple[str, ...],
         title: str = ""):
    """The matplotlib figure of one declared figure, or None when the sweep does not vary what it
    shows (``needs``) or no panel would have two x values."""
    if not _shows_something(frame, spec, varying):
        return None
    layout = Layout(frame, spec, experiment, varying)
    marks = _marks(frame, spec, layout)
    panels = _panels(marks.stored, layout, spec)
    if not panels:
        return None
    caption = _caption_lines(caption_text(frame, experiment, layout, marks.floor), len(panels))
    fig, top, bottom, axes = canvas(len(panels), len(caption))
    legend = Legend()
    positions = {x: i for i, x in enumerate(sorted(marks.stored["_x"].unique()))} if spec.kind == "intervals" else {}
    for ax, where in zip(axes, panels):
        _panel(ax, where, marks, laws, spec, experiment, layout, legend, positions)
    _scales(axes, marks, spec, experiment, layout, positions)
    _axis_labels(axes, spec, experiment, marks, min(len(panels), COLUMNS))
    _finish(fig, top, bottom, title, legend, caption, min(len(panels), COLUMNS))
    return fig


def _shows_something(frame: pd.DataFrame, spec: FigureSpec, varying: tuple[str, ...]) -> bool:
    """The frame has the figure's columns and the sweep varies what the figure is about (``needs``:
    F against W means nothing at one F; cost against ρ only when the sweep moves ρ)."""
    needed = [spec.x, spec.y, spec.series] + ([spec.marker] if spec.marker else [])
    if not len(frame) or any(c not in frame for c in needed):
        return False
    return not spec.needs or any(k in varying and frame[k].nunique(dropna=True) > 1 for k in spec.needs if k in frame)


def _marks(frame: pd.DataFrame, spec: FigureSpec, layout: Layout) -> Marks:
    """The rows to draw, as shortfalls when every value sits at the ceiling; sets the layout's
    ``all_at_top`` and the factor between side-by-side crosses (``dodge``)."""
    stored, failed = _prepare(frame, spec)
    at_ceiling, floor = _ceiling(stored, spec)
    layout.all_at_top = spec.top if spec.ceiling and len(stored) and (stored["_y"] == spec.top).all() else None
    if at_ceiling:
        stored = stored.assign(_y=np.maximum(spec.top - stored["_y"], floor))
        failed = failed.iloc[0:0]
    span = pd.concat([stored["_x"], failed["_x"]])
    span = span[span > 0]
    layout.dodge = (span.max() / span.min()) ** 0.04 if len(span) and span.min() > 0 else 1.1
    return Marks(stored, failed, floor if at_ceiling else None)


def _caption_lines(caption: str, panels: int) -> list[str]:
    """The caption wrapped to the width of the panels."""
    width_chars = int((PANEL_SIZE[0] * min(panels, COLUMNS) + (1.0 if panels == 1 else 0)) * 16)
    return textwrap.wrap(caption, width_chars) if caption else []


def _panel(ax, where: dict, marks: Marks, laws: list, spec: FigureSpec, experiment: Experiment, layout: Layout,
           legend: Legend, positions: dict) -> None:
    """One panel: the rows of ``where`` drawn by the figure's kind, the reference line and a title."""
    here, lost = _subset(marks.stored, where), _subset(marks.failed, where)
    facet, series = where.get(layout.facet), where.get(layout.series) if layout.curves_by_group else None
    if spec.kind == "curves":
        _curves(ax, here, spec, experiment, layout, legend, series)
    elif spec.kind == "intervals":
        _intervals(ax, here, spec, experiment, layout, legend, positions)
    else:
        _points(ax, here, lost, laws, spec, experiment, layout, legend, facet)
    _reference(ax, spec, marks.at_ceiling, legend)
    words = [str(series)] if series is not None else []
    words += [setting_text(experiment, {k: v}) for k, v in where.items() if k != layout.series]
    if words or ax.texts:
        ax.set_title(", ".join(words), fontsize=9, pad=title_pad(ax))
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=8)


def _reference(ax, spec: FigureSpec, at_ceiling: bool, legend: Legend) -> None:
    """The horizontal reference line, at ``top − reference`` when y is drawn as a shortfall."""
    if spec.reference is None:
        return
    style = {"color": "0.45", "lw": 0.9, "ls": (0, (4, 3))}
    if at_ceiling:
        ax.axhline(spec.top - spec.reference, zorder=1, **style)
        legend.add(f"reference {spec.reference:g} (shortfall {spec.top - spec.reference:g})", **style)
    else:
        ax.axhline(spec.reference, zorder=1, **style)
        legend.add(f"reference {spec.reference:g}", **style)


def _scales(axes: list, marks: Marks, spec: FigureSpec, experiment: Experiment, layout: Layout,
            positions: dict) -> None:
    """Both axes' scales, limits and ticks, shared by every panel."""
    stored, failed = marks.stored, marks.failed
    if spec.kind == "intervals":
        for ax in axes:
            ax.set_xlim(-0.6, len(positions) - 0.4)
            ax.set_xticks(range(len(positions)), [value_text(x) for x in positions])
        axis(axes, "y", stored["_y"], spec.log_y, experiment, spec.y, spec.top)
        return
    x_values = pd.concat([stored["_x"], failed["_x"]])
    if len(failed):  # the side-by-side crosses stay inside the frame
        x_values = pd.concat([x_values, failed["_x"] * layout.dodge ** (failed[layout.series].nunique() / 2)])
    axis(axes, "x", x_values, spec.log_x, experiment, spec.x)
    y_values = pd.concat([stored["_y"], failed["_y"]])
    axis(axes, "y", y_values, spec.log_y or marks.at_ceiling, experiment, spec.y,
         None if marks.at_ceiling else spec.top)


def _axis_labels(axes: list, spec: FigureSpec, experiment: Experiment, marks: Marks, columns: int) -> None:
    """Words on the left column's y axes and the bottom row's x axes."""
    y_words = label(experiment, spec.y)
    if marks.at_ceiling:
        y_words = f"{spec.top:g} − {y_words}"
    for i, ax in enumerate(axes):
        if i % columns == 0:
            ax.set_ylabel(y_words, fontsize=9)
        if i >= len(axes) - columns:
            ax.set_xlabel(label(experiment, spec.x, spec.invert_x), fontsize=9)
            ax.xaxis.set_tick_params(labelbottom=True)


def _finish(fig, top, bottom, title: str, legend: Legend, caption: list[str], columns: int) -> None:
    """The title above, the legend below the panels (never over the data) and the caption strip."""
    if title:
        top.suptitle(textwrap.fill(title, int(fig.get_size_inches()[0] * 11)), fontsize=11)
    order = legend.notes_last()
    if order:
        top.legend([legend.entries[k] for k in order], [textwrap.fill(k, 40) for k in order], fontsize=7,
                   loc="outside lower center", ncols=min(len(order), 2 * columns), frameon=False,
                   handlelength=1.8, columnspacing=1.2)
    if bottom is not None:
        bottom.text(0.01, 0.5, "\n".join(caption), fontsize=7, color="0.25", ha="left", va="center")
