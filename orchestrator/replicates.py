"""Replicates: the seeds of one setting summarised as n, median, range and a 95% interval.

The interval is Student's t interval of the mean, taken on the log scale for a positive result
(parameter counts spread multiplicatively), i.e. an interval of the geometric mean, and on the
logit scale for a fraction (recall, accuracy, a score), so it never runs past 1. With n = 3 it
is wide, as it should be: three fact sets say little about a fourth.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orchestrator.statistics import interval

REPLICATE = "seed"


def aggregate(cells: pd.DataFrame, keys: list[str], metrics: list[str], notes: pd.Series | None = None,
              fractions: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per combination of ``keys``: ``n`` replicate cells and, per metric over the cells where
    it exists, ``m`` (median), ``m_min``, ``m_max``, ``m_low``/``m_high`` (95% interval), ``m_n``.
    A metric in ``fractions`` lies in [0, 1]: its interval is taken on the logit scale."""
    rows = []
    frame = cells.assign(_note=notes if notes is not None else "")
    for key, group in frame.groupby(keys, dropna=False, sort=True) if keys else [((), frame)]:
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["n"] = len(group)
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").dropna().to_numpy(dtype=float) if m in group else []
            low, high = interval(values, bounds=(0.0, 1.0) if m in fractions else None)
            row.update({m: float(np.median(values)) if len(values) else math.nan,
                        f"{m}_min": float(np.min(values)) if len(values) else math.nan,
                        f"{m}_max": float(np.max(values)) if len(values) else math.nan,
                        f"{m}_low": low, f"{m}_high": high, f"{m}_n": len(values)})
        flagged = int((group["_note"].fillna("") != "").sum())
        row["notes"] = f"{flagged}/{len(group)} flagged" if flagged else ""
        rows.append(row)
    return pd.DataFrame(rows)


def display(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """The aggregate as a reader takes it in: per metric 'median', 'min–max' and '95% CI' columns."""
    def num(v):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"

    out = table[keys + ["n"]].copy()
    for m in metrics:
        out[m] = [num(v) + ("" if n == total else f" ({n}/{total})")
                  for v, n, total in zip(table[m], table[f"{m}_n"], table["n"])]
        out[f"{m} min–max"] = [f"{num(a)}–{num(b)}" if n else "" for a, b, n in
                               zip(table[f"{m}_min"], table[f"{m}_max"], table[f"{m}_n"])]
        out[f"{m} 95% CI"] = [f"[{num(a)}, {num(b)}]" if n >= 2 else "" for a, b, n in
                              zip(table[f"{m}_low"], table[f"{m}_high"], table[f"{m}_n"])]
    if table["notes"].astype(bool).any():
        out["notes"] = table["notes"]
    return out
