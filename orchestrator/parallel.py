"""Parallel coordinates over a sweep's swept keys and its results, one line per cell, a colour per method.

An axis per swept key (method included, its values spread evenly), then the results; a numeric axis
spanning more than a factor of ten is logarithmic. Cells with no result (stored nothing) end at the
bottom of that axis, marked "none". A figure artifact of the sweep run, which MLflow's artifact
viewer shows as an image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.figure_style import colour

RESULTS = ("min_width", "params")


def _axis(values: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0.05, 1] for ``values`` (missing: 0) and the tick labels of the axis."""
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    if not numeric:
        levels = sorted(present.astype(str).unique())
        spot = {v: 0.05 + 0.95 * (i / max(len(levels) - 1, 1)) for i, v in enumerate(levels)}
        return (np.array([spot.get(str(v), 0.0) if pd.notna(v) else 0.0 for v in values]),
                [(p, v) for v, p in spot.items()])
    low, high = float(present.min()), float(present.max())
    log = low > 0 and high / low > 10
    scale = (lambda v: np.log10(v)) if log else (lambda v: v)
    lo, hi = scale(low), scale(high)
    span = (hi - lo) or 1.0
    where = np.array([0.05 + 0.95 * (scale(float(v)) - lo) / span if pd.notna(v) else 0.0 for v in values])
    ticks = sorted(set(present.tolist()))
    ticks = ticks if len(ticks) <= 8 else [ticks[int(i)] for i in np.linspace(0, len(ticks) - 1, 6)]
    return where, [(0.05 + 0.95 * (scale(float(t)) - lo) / span, f"{t:g}") for t in ticks]


def draw(frame: pd.DataFrame, varying: tuple[str, ...], path: Path) -> Path | None:
    """Write the figure to ``path`` (PNG); None when fewer than two axes would be drawn."""
    import matplotlib.pyplot as plt

    keys = (["method"] if "method" in frame and "method" not in varying else []) + [k for k in varying if k in frame]
    keys += [r for r in RESULTS if r in frame and frame[r].notna().any()]
    if len(keys) < 2 or not len(frame):
        return None
    placed = {k: _axis(frame[k]) for k in keys}
    fig, axis = plt.subplots(figsize=(1.9 * len(keys) + 2, 4.4))
    xs = np.arange(len(keys))
    methods = frame["method"].astype(str) if "method" in frame else pd.Series(["cell"] * len(frame))
    for i, method in enumerate(methods):
        axis.plot(xs, [placed[k][0][i] for k in keys], color=colour(method), alpha=0.55, lw=1.2)
    for x, key in zip(xs, keys):
        axis.axvline(x, color="#555", lw=0.8)
        for y, text in placed[key][1]:
            axis.text(x + 0.03, y, text, fontsize=7, va="center")
        if frame[key].isna().any():
            axis.text(x + 0.03, 0.0, "none", fontsize=7, va="center", color="#a00")
    axis.set_xticks(xs, keys)
    axis.set_yticks([])
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlim(-0.2, len(keys) - 0.6)
    for side in ("left", "right", "top"):
        axis.spines[side].set_visible(False)
    handles = [plt.Line2D([], [], color=colour(m), lw=2, label=m) for m in dict.fromkeys(methods)]
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1), fontsize=8, frameon=False)
    axis.set_title("one line per cell over the swept keys and the results", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
