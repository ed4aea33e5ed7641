"""How every report figure looks: colours, markers, tick labels, words, the legend and the canvas.

One style for every figure of every sweep (``orchestrator.figures`` decides what a figure shows and
draws it with these). A value keeps its colour and marker across sweeps: the colours of the values
today's experiments declare are fixed below, any other value gets one derived from its name's
sha256 among colours no declared value has, so a new method never moves another's colour.
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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from orchestrator.atomic import write_atomic  # noqa: E402
from orchestrator.experiment import Experiment  # noqa: E402

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


# The colour of each series value the experiments declared when colours were fixed (black for the
# trained reference, gd). Add a new value here to choose its colour; left out, it gets a hashed one.
COLOURS = {"gd": "#1b1b1b", "data_dependent": "#d62728", "encoder_decoder": "#1f77b4", "hebbian": "#2ca02c",
           "hebbian_whitened": "#ff7f0e", "ntk": "#9467bd", "swap": "#8c564b", "fine_tune": "#e377c2",
           "rank_one": "#17becf", "batch_rank_one": "#bcbd22"}
# Colours no fixed value has, for every other value.
UNCLAIMED = tuple(c for c in PALETTE if c not in COLOURS.values())


def _hashed(value, choices):
    """One of ``choices`` chosen by the sha256 of the value's text: the same in every process and sweep."""
    return choices[int(hashlib.sha256(str(value).encode()).hexdigest(), 16) % len(choices)]


def colour(value) -> str:
    """The colour of a series value: its fixed one, else a stable hashed one no fixed value has."""
    return COLOURS.get(str(value)) or _hashed(value, UNCLAIMED)



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
    return _hashed(value, MARKERS)


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


def value_text(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return f"{int(value)}"
    return human(float(value)) if isinstance(value, (int, float, np.number)) else str(value)


def setting_text(experiment: Experiment, values: dict) -> str:
    """'β = 2, κ = 10' for the settings a mark stands for (unset ones, e.g. κ of a spike cell, left out)."""
    return ", ".join(f"{symbol(experiment, k)} = {value_text(v)}" for k, v in values.items() if v == v and v is not None)


def save(fig, path: Path) -> list[Path]:
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


def title_pad(ax) -> float:
    """Room above the frame for the group labels (upright ones need their length)."""
    upright = [t for t in ax.texts if t.get_rotation() == 90]
    if upright:
        return 6 + 3.4 * max(len(t.get_text()) for t in upright)
    return 12 if ax.texts else 4


def axis(ax_list, which: str, values: pd.Series, log: bool, experiment: Experiment, column: str,
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


def canvas(n: int, caption_lines: int):
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


def runs(values) -> str:
    """'0–9' for consecutive integers, else the values listed."""
    numbers = [v for v in values if isinstance(v, (int, float, np.number)) and float(v).is_integer()]
    if len(numbers) == len(values) and len(values) > 2 and max(values) - min(values) == len(values) - 1:
        return f"{value_text(min(values))}–{value_text(max(values))}"
    return ", ".join(value_text(v) for v in values)
