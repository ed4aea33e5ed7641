"""Fit an experiment's declared laws to the cells of a scope and record them in the fits table."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd

from orchestrator.experiment import FitSpec, LawFit
from orchestrator.identity import digest
from orchestrator.replicates import REPLICATE
from orchestrator.scope import Scope
from orchestrator.store import Store


@dataclass(frozen=True)
class FittedLaw:
    """One law fitted in one group of cells: the declaration, the group's labels, the fit, the cells."""

    spec: FitSpec
    labels: dict
    fit: LawFit
    cells: pd.DataFrame

    def row(self, sweep: str, cell_set_id: str | None = None) -> dict:
        """The fits table's row; its key covers the scope's cell set, so two scopes that fit the same
        cells keep a row each (and fits_current finds both)."""
        used = self.cells.iloc[list(self.fit.rows)]
        scoped = {"cell_set": cell_set_id} if cell_set_id else {}
        row = {"fit_id": digest({"sweep": sweep, "law": self.spec.law.name, "cells": sorted(used["cell_id"]), **scoped}),
               "law": self.spec.law.name, "x": self.spec.x, "y": self.spec.y, **self.labels, "r2": self.fit.r2,
               "n": len(used), "seeds": len(set(used[REPLICATE])) if REPLICATE in used else 1,
               "x_values": len(set(self.fit.extra["x"])),
               "problems": "; ".join(self.fit.problems()), "cell_ids": list(used["cell_id"])}
        for symbol, value in self.fit.estimates.items():
            low, high = self.fit.intervals[symbol]
            name = self.spec.law.columns[symbol]
            row.update({name: value, f"{name}_low": low, f"{name}_high": high,
                        f"{name}_interval": self.fit.interval_kind.get(symbol, "")})
        return row


def fit_laws(cells: pd.DataFrame, specs: tuple[FitSpec, ...], varying: tuple[str, ...], *,
             n_boot: int = 1000) -> list[FittedLaw]:
    """Each declared law within each group of cells that differ only in the law's ``over`` keys and seed."""
    out = []
    for spec in specs:
        if not len(cells) or spec.x not in cells or spec.y not in cells:
            continue
        group_keys = [k for k in varying if k not in spec.over and k != REPLICATE and k in cells]
        groups = cells.groupby(group_keys, dropna=False, sort=True) if group_keys else [((), cells)]
        for key, group in groups:
            moving = [k for k in spec.over if k in group and group[k].nunique() >= 2]
            if not moving:
                continue  # x does not move along the law in this group
            group = group.reset_index(drop=True)
            strata = group[moving].astype(str).agg("|".join, axis=1).to_numpy()
            try:
                result = spec.law.fit(group[spec.x].astype(float), group[spec.y].astype(float), strata=strata,
                                      replicates=group[REPLICATE].to_numpy() if REPLICATE in group else None,
                                      n_boot=n_boot)
            except ValueError:
                continue  # too few stored cells in this group for this law
            labels = dict(zip(group_keys, key if isinstance(key, tuple) else (key,)))
            out.append(FittedLaw(spec, labels, result, group))
    return out


def fit_scope(store: Store, scope: Scope, *, n_boot: int = 1000) -> list[FittedLaw]:
    """Fit the scope's cells, append the rows to the ``fits`` table and return the fitted laws.

    Each row names what it was fitted over, so the view ``fits_current`` can keep only the newest
    fit of each scope: ``cell_set_id`` (a digest of the cell ids the scope covers: a sweep file with
    its overrides, or every cell of a name), ``scope`` (those words) and ``invocation_id`` (this
    fit or report command; one id per call)."""
    cells = scope.load(store, "cells")
    laws = fit_laws(cells, scope.experiment.reporting.fits, scope.varying(cells), n_boot=n_boot)
    covered = sorted(scope.cell_ids) if scope.cell_ids is not None else sorted(cells.get("cell_id", []))
    where = {"cell_set_id": digest({"sweep": scope.sweep, "cells": covered}), "scope": scope.label,
             "invocation_id": uuid.uuid4().hex[:16]}
    store.append("fits", scope.sweep, [{**law.row(scope.sweep, where["cell_set_id"]), **where} for law in laws])
    return laws
