"""Plain renderings of result tables for terminals and markdown (no extra dependency)."""
from __future__ import annotations

import math

import pandas as pd


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if math.isfinite(value) and (value.is_integer() or 1e4 <= abs(value) < 1e9) and abs(value) < 1e9:
            return f"{value:.0f}"  # parameter counts and widths read as integers, not 1.555e+04
        return f"{value:.4g}"
    return str(value)


def markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def text(frame: pd.DataFrame) -> str:
    if not len(frame.columns):
        return "(no rows)"
    cells = [[str(c) for c in frame.columns]] + [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
