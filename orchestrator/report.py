"""Reports of a sweep: the experiment's declared figures (with fitted laws) and a markdown page.

``<root>/reports/<sweep>.md`` holds the summary table, every fit with its bootstrap interval and
the experiment's findings in words; each figure is ``<root>/reports/<sweep>-<figure>.png``.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from factmlp.experiments import REGISTRY  # noqa: E402
from factmlp.experiments.base import FigureSpec  # noqa: E402
from orchestrator.fitting import fit_sweep  # noqa: E402
from orchestrator.store import Store  # noqa: E402
from orchestrator.tables import markdown  # noqa: E402

MARKERS = "osD^vP*Xh<>"


def summary_table(cells: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    present = [c for c in columns if c in cells]
    table = cells[present].sort_values(present[:4]).reset_index(drop=True) if len(cells) else cells
    if {"num_facts", "params"} <= set(table.columns):
        # An arbitrary permutation of F items carries log2(F!) bits.
        bits = table["num_facts"].map(lambda f: math.lgamma(f + 1) / math.log(2))
        table = table.assign(bits_per_param=bits / table["params"].astype(float))
    return table


def _atomic_save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(path)
    finally:  # a full disk leaves neither a partial figure nor a temporary file
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def _law_curve(law: str, fit: pd.Series, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of a fitted law in the figure's coordinates (x as plotted)."""
    if law == "power":  # plotted x = W, y = F:  log2 F = s·log2 W + c
        return xs, 2.0 ** (fit["s"] * np.log2(xs) + fit["c"])
    if law == "rho":  # plotted x = 1/ρ, y = W:  log W = a + p·log(1/ρ)
        return xs, np.exp(fit["a"] + fit["p"] * np.log(xs))
    return xs, fit["C"] * xs * (np.log2(xs) + fit["b"])


def figure(frame: pd.DataFrame, fits: pd.DataFrame, spec: FigureSpec, title: str, path: Path) -> Path | None:
    """Draw one declared figure; None when the sweep has no data that varies along it."""
    needed = [spec.x, spec.y, spec.series] + ([spec.marker] if spec.marker else [])
    if not len(frame) or any(c not in frame for c in needed):
        return None
    data = frame.dropna(subset=[spec.x, spec.y]).copy()
    data["_x"] = 1.0 / data[spec.x].astype(float) if spec.invert_x else data[spec.x].astype(float)
    if data["_x"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    marks = sorted(data[spec.marker].unique()) if spec.marker else [None]
    for i, (name, group) in enumerate(sorted(data.groupby(spec.series), key=lambda kv: str(kv[0]))):
        colour = f"C{i % 10}"
        for j, mark in enumerate(marks):
            part = group if mark is None else group[group[spec.marker] == mark]
            if not len(part):
                continue
            label = f"{name}" + (f", {spec.marker}={mark}" if mark is not None else "")
            if spec.table == "probes":
                for _, cell in part.groupby("cell_id"):
                    cell = cell.sort_values("_x")
                    ax.plot(cell["_x"], cell[spec.y], marker=MARKERS[j % len(MARKERS)], color=colour, alpha=0.7,
                            ms=3, lw=0.8, label=label)
                    label = None
            else:
                part = part.sort_values("_x")
                ax.plot(part["_x"], part[spec.y], marker=MARKERS[j % len(MARKERS)], color=colour, ls="none",
                        label=label)
        for _, f in (fits[(fits["law"] == spec.law) & (fits[spec.series] == name)].iterrows()
                     if spec.law and len(fits) and spec.series in fits else []):
            xs = np.geomspace(group["_x"].min(), group["_x"].max(), 50)
            ax.plot(*_law_curve(spec.law, f, xs), color=colour, lw=1, alpha=0.8)
    ax.set_xscale("log", base=2)
    if spec.table != "probes":
        ax.set_yscale("log", base=2)
    ax.set_xlabel(f"1/{spec.x}" if spec.invert_x else spec.x)
    ax.set_ylabel(spec.y)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _atomic_save(fig, path)


def _fits_table(fits: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for f in fits.to_dict("records"):
        names = {"size": ("C", "b"), "power": ("s", "c"), "rho": ("p", "a")}[f["law"]]
        group = ", ".join(f"{k}={f[k]}" for k in ("method", "geometry", "d", "num_facts")
                          if k in f and f[k] is not None and not (isinstance(f[k], float) and math.isnan(f[k])))
        estimate = "; ".join(f"{n} = {f[n]:.3g} [{f[n + '_low']:.3g}, {f[n + '_high']:.3g}]" for n in names)
        rows.append({"law": f["law"], "group": group, "estimate [95% CI]": estimate, "R²": f["r2"], "cells": f["n"]})
    return pd.DataFrame(rows)


def write_report(root: str | Path, sweep: str, *, n_boot: int = 1000) -> tuple[list[Path], Path, pd.DataFrame]:
    """Fit, draw and write the report of ``sweep``; return the figure paths, the markdown path and the table."""
    store = Store(root)
    cells = store.load("cells", sweep)
    if not len(cells):
        raise LookupError(f"no finished cells for sweep {sweep!r} under {root}")
    experiment = REGISTRY[cells["experiment"].iloc[0]]
    fits = fit_sweep(store, sweep, experiment, n_boot=n_boot)
    probes = store.load("probes", sweep) if any(f.table == "probes" for f in experiment.figures) else pd.DataFrame()
    if len(probes):
        probes = probes[probes["status"] == "ok"]
    out = Path(root) / "reports"
    pictures = [p for p in (figure(probes if spec.table == "probes" else cells, fits, spec,
                                   f"{sweep}: {spec.title or spec.name}", out / f"{sweep}-{spec.name}.png")
                            for spec in experiment.figures) if p is not None]
    table = summary_table(cells, experiment.summary_columns)
    parts = [f"# Sweep `{sweep}`", f"{len(cells)} finished cells of experiment `{experiment.name}`."]
    parts += [f"![{p.stem}]({p.name})" for p in pictures]
    parts += ["## Results", markdown(table)]
    if len(fits):
        parts += ["## Fits (bootstrap over cells)", markdown(_fits_table(fits))]
    if experiment.findings:
        text = experiment.findings(cells.to_dict("records"), fits.to_dict("records") if len(fits) else [])
        if text:
            parts += ["## Findings", text]
    md = out / f"{sweep}.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    tmp = md.with_name(f".{md.name}.tmp")
    try:
        tmp.write_text("\n\n".join(parts) + "\n")
        tmp.replace(md)
    finally:
        tmp.unlink(missing_ok=True)
    return pictures, md, table
