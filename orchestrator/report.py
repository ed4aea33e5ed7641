"""Reports of a sweep: the experiment's declared figures (with fitted laws) and a markdown page.

``<root>/reports/<name>.md`` holds the summary table, every fit with its bootstrap interval and
the experiment's findings in words; each figure is ``<root>/reports/<name>-<figure>.png`` and ``.pdf``.
``<name>`` is the scope's (``orchestrator.scope``): the sweep's name for the file itself,
``<sweep>@<8 hex>`` for a file whose overrides change its cells. A new report replaces the files of the
previous report of its scope: the new ones are written first, then the figures it no longer draws
(too few points this time) are removed, so none is left beside a report that does not show it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import cell_columns
from orchestrator.atomic import write_atomic
from orchestrator.figures import figure
from orchestrator.fitting import FittedLaw, fit_scope
from orchestrator.replicates import REPLICATE, aggregate, display
from orchestrator.scope import Scope
from orchestrator.store import Store
from orchestrator.render import markdown


class NothingToReport(LookupError):
    """The scope has no finished cell yet."""


def columns(scope: Scope, cells: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(parameter columns, result columns) of a table of ``cells``: the experiment's own summary
    columns plus every parameter that varies, so no two rows look alike."""
    keys = cell_columns.keys(scope.experiment, scope.varying(cells))
    return [k for k in keys if k in cells], [r for r in cell_columns.results(scope.experiment) if r in cells]


def cell_table(scope: Scope, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, sorted by its parameters, with the experiment's note on cells it flags."""
    keys, results = columns(scope, cells)
    table = cells[keys + results].copy() if len(cells) else pd.DataFrame(columns=keys + results)
    notes = _notes(scope, cells)
    if notes.astype(bool).any():
        table["note"] = notes.to_numpy()
    return table.sort_values(keys, kind="stable").reset_index(drop=True) if keys else table


def _notes(scope: Scope, cells: pd.DataFrame) -> pd.Series:
    note = scope.experiment.reporting.cell_note
    return pd.Series([note(c) if note else "" for c in cells.to_dict("records")], index=cells.index, dtype=object)


def replicate_table(scope: Scope, cells: pd.DataFrame) -> pd.DataFrame | None:
    """Cells aggregated over seeds (None when the scope has no replicates or nothing to aggregate)."""
    keys, _ = columns(scope, cells)
    metrics = [m for m in scope.experiment.reporting.aggregates if m in cells]
    if REPLICATE not in scope.varying(cells) or not metrics:
        return None
    keys = [k for k in keys if k != REPLICATE]
    fractions = scope.experiment.reporting.fractions
    return display(aggregate(cells, keys, metrics, _notes(scope, cells), fractions), keys, metrics)


def summary(scope: Scope, cells: pd.DataFrame) -> pd.DataFrame:
    """The table a terminal shows after ``run``: over seeds when there are replicates, else per cell."""
    over_seeds = replicate_table(scope, cells)
    return over_seeds if over_seeds is not None else cell_table(scope, cells)


def _group(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "all cells"


def fits_section(laws: list[FittedLaw]) -> list[str]:
    """The fits as a table, degenerate ones as warning lines (never as numbers)."""
    rows, warnings = [], []
    for law in laws:
        problems = law.fit.problems()
        if problems:
            warnings.append(f"- ⚠ {law.spec.law.name} law, {_group(law.labels)}: degenerate ({'; '.join(problems)}); "
                            "not reported.")
            continue
        names = law.spec.law.parameters
        if law.fit.has_interval():
            estimate = "; ".join(f"{n} = {law.fit.estimates[n]:.3g} [{law.fit.intervals[n][0]:.3g}, "
                                 f"{law.fit.intervals[n][1]:.3g}] ({law.fit.interval_kind[n]})"
                                 for n in names)
        else:
            estimate = "; ".join(f"{n} = {law.fit.estimates[n]:.3g}" for n in names) + (
                f" (point estimates: {len(set(law.fit.extra['x']))} values of {law.spec.x}, too few for an interval)")
        seeds = law.cells[REPLICATE].nunique() if REPLICATE in law.cells else 1
        rows.append({"law": law.spec.law.name, "group": _group(law.labels), "estimate [95% CI]": estimate,
                     "R²": law.fit.r2, "cells": len(law.fit.rows), "seeds": seeds})
    out = [markdown(pd.DataFrame(rows))] if rows else []
    return out + (["\n".join(warnings)] if warnings else [])


def _provenance(store: Store, scope: Scope, cells: pd.DataFrame) -> str:
    """Which invocations and code versions recorded the covered cells."""
    ids = sorted(set(cells["invocation_id"].dropna())) if "invocation_id" in cells else []
    versions = sorted(set(cells["code_version"].dropna())) if "code_version" in cells else []
    runs = store.load("invocations", scope.sweep, missing_ok=True)
    runs = runs[runs["invocation_id"].isin(ids)] if len(runs) else runs
    lines = [f"Recorded by {len(ids)} invocation(s) of `factsweep run` (code version{'s' if len(versions) > 1 else ''} "
             f"{', '.join(versions) or 'unknown'})."]
    for r in runs.sort_values("started_at").to_dict("records") if len(runs) else []:
        lines.append(f"- `{r['invocation_id']}` {r['started_at']} on {r['host']}: overrides {r['overrides']}, "
                     f"profile {r['profile'] or 'none'}, code {r['code_version']}, {r['state']}")
    return "\n".join(lines)


def _remove_undrawn(out: Path, name: str, experiment, drawn: set[Path]) -> None:
    """Figures of the scope's previous report that this one did not draw (their names are the
    experiment's declared figures: never another report's files)."""
    for spec in experiment.reporting.figures:
        for suffix in (".png", ".pdf"):
            path = out / f"{name}-{spec.name}{suffix}"
            if path not in drawn:
                path.unlink(missing_ok=True)


def write_report(scope: Scope, *, n_boot: int = 1000) -> tuple[list[Path], Path, pd.DataFrame]:
    """Fit, draw and write the report of the scope's cells; return the figure paths, the markdown
    path and the summary table (over seeds when there are replicates)."""
    store = Store(scope.root)
    cells = scope.load(store, "cells")
    if not len(cells):
        raise NothingToReport(f"no finished cells among {scope.label} under {scope.root}")
    experiment = scope.experiment
    laws = fit_scope(store, scope, n_boot=n_boot)
    recorded = scope.load(store, "probes")
    probes = recorded[recorded["status"] == "ok"] if len(recorded) else recorded
    out, name = scope.root / "reports", scope.report_name
    varying = scope.varying(cells)
    pictures = [p for spec in experiment.reporting.figures
                for p in figure(probes if spec.table == "probes" else cells, laws, spec, experiment, varying,
                                spec.title or spec.name.replace("_", " "), out / f"{name}-{spec.name}.png")]
    others = scope.others(store)
    parts = [f"# Sweep `{name}`", f"Covers {scope.label}: {len(cells)} finished, of experiment "
             f"`{experiment.name}`."]
    if len(others):
        parts.append(f"{len(others)} other cell(s) recorded under the name `{scope.sweep}` are not included "
                     f"(`factsweep extra-cells {scope.spec.source if scope.spec else scope.sweep}` lists them).")
    parts.append(_provenance(store, scope, cells))
    parts += [f"![{p.stem}]({p.name}) ([PDF]({p.with_suffix('.pdf').name}))" for p in pictures if p.suffix == ".png"]
    over_seeds = replicate_table(scope, cells)
    if over_seeds is not None:
        parts += ["## Results over seeds", "Per setting: n seeds, the median, the range and a 95% t interval "
                  "(of the geometric mean for counts, on the logit scale for fractions: see "
                  "`orchestrator/replicates.py`).", markdown(over_seeds)]
    parts += ["## Cells", markdown(cell_table(scope, cells))]
    if laws:
        parts += ["## Fits", "Intervals: a stratified bootstrap (seeds resampled within each value of the law's x) "
                  "and, with replicates, a t interval over one fit per seed; each estimate shows the wider of the "
                  "two and names it."] + fits_section(laws)
    if experiment.reporting.findings:
        text = experiment.reporting.findings(cells.to_dict("records"), [law.row(scope.sweep) for law in laws])
        if text:
            parts += ["## Findings", text]
    md = out / f"{name}.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    table = out / f"{name}-cells.csv"  # every covered cell, every column: for pandas, R or a spreadsheet
    write_atomic(table, lambda tmp: cells.drop(columns=["sweep"], errors="ignore").to_csv(tmp, index=False))
    trail = out / f"{name}-probes.csv"  # every probe of those cells: the evidence behind each answer
    write_atomic(trail, lambda tmp: recorded.drop(columns=["sweep"], errors="ignore").dropna(axis=1, how="all")
                 .to_csv(tmp, index=False))
    parts.insert(2, f"Cells as a table: [{table.name}]({table.name}); every probe of them: [{trail.name}]({trail.name}).")
    write_atomic(md, lambda tmp: tmp.write_text("\n\n".join(parts) + "\n"))
    _remove_undrawn(out, name, experiment, set(pictures))
    pictures = pictures + [table, trail]
    return pictures, md, over_seeds if over_seeds is not None else cell_table(scope, cells)
