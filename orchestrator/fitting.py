"""Fit an experiment's declared laws to a sweep's finished cells and record them in the fits table."""
from __future__ import annotations

import pandas as pd

from factmlp.experiments.base import Experiment
from factmlp.scaling import fit
from orchestrator.identity import digest
from orchestrator.store import Store


def fit_sweep(store: Store, sweep: str, experiment: Experiment, *, n_boot: int = 1000) -> pd.DataFrame:
    """Fit every declared law within each group that has enough distinct points; append and return rows."""
    cells = store.load("cells", sweep)
    rows = []
    for spec in experiment.fits:
        if not len(cells) or spec.x not in cells or spec.y not in cells or any(g not in cells for g in spec.group):
            continue
        for key, group in cells.groupby(list(spec.group), dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            try:
                result = fit(spec.law, group[spec.x].astype(float), group[spec.y].astype(float), n_boot=n_boot)
            except ValueError:
                continue  # too few distinct points in this group for this law
            labels = dict(zip(spec.group, key))
            row = {"fit_id": digest({"sweep": sweep, "law": spec.law, "group": {k: str(v) for k, v in labels.items()}}),
                   "law": spec.law, "x": spec.x, "y": spec.y, **labels, "r2": result.r2, "n": len(result.rows),
                   "cell_ids": [group["cell_id"].iloc[i] for i in result.rows]}
            for name, value in result.estimates.items():
                low, high = result.intervals[name]
                row.update({name: value, f"{name}_low": low, f"{name}_high": high})
            rows.append(row)
    store.append("fits", sweep, rows)
    return pd.DataFrame(rows)
