"""The chart a researcher builds first in MLflow: a result (min_width, params) against num_facts on log
axes, a colour per method, the median over seeds as a line and their range as a band.

MLflow can save chart cards in a shared view, but its scatter cards have no log axes, no colour by a
parameter and no band over seeds; so this one is a figure artifact of the sweep run.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator.figure_style import colour, marker

X = "num_facts"
RESULTS = ("min_width", "params")


def series_keys(frame: pd.DataFrame, varying: tuple[str, ...]) -> list[str]:
    """What tells the lines apart: method first, then every other swept key but the x axis and the seed."""
    keys = [k for k in varying if k not in (X, "seed") and k in frame]
    return (["method"] if "method" in frame else []) + [k for k in keys if k != "method"]


def draw(frame: pd.DataFrame, varying: tuple[str, ...], path: Path) -> Path | None:
    """Write the chart to ``path`` (PNG); None when the cells do not vary in num_facts or lack the results."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    results = [r for r in RESULTS if r in frame and frame[r].notna().any()]
    if X not in frame or frame[X].nunique() < 2 or not results:
        return None
    keys = series_keys(frame, varying)
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results) + 2.2, 4.2), squeeze=False)
    for axis, result in zip(axes[0], results):
        rows = frame[frame[result].notna() & (frame[result] > 0)]
        for values, group in rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]:
            values = values if isinstance(values, tuple) else (values,)
            spread = group.groupby(X)[result].agg(["median", "min", "max", "count"]).sort_index()
            method = values[0] if keys and keys[0] == "method" else None
            style = dict(color=colour(method) if method is not None else None,
                         marker=marker(values[1]) if len(values) > 1 else "o")
            label = " ".join(str(v) if k == "method" else f"{k}={v}" for k, v in zip(keys, values)) or result
            axis.plot(spread.index, spread["median"], label=label, lw=1.6, ms=5, **style)
            if (spread["count"] > 1).any():
                axis.fill_between(spread.index, spread["min"], spread["max"], color=style["color"], alpha=0.18, lw=0)
        axis.set_xscale("log")
        axis.set_yscale("log")
        for ticks in (axis.xaxis, axis.yaxis):  # 8, 16, 300 rather than 8 x 10^0
            ticks.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ticks.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.1g}"[0] in "2358" else ""))
        axis.set_xlabel("facts stored, num_facts")
        axis.set_ylabel(result)
        axis.grid(True, which="both", alpha=0.25)
    seeds = frame["seed"].nunique() if "seed" in frame else 1
    fig.suptitle(f"median over {seeds} seed(s); band: their range" if seeds > 1 else "one seed per point", fontsize=9)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
