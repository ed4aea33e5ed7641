"""Committed reference studies rerun with early stop against their full-recipe runs (issue 32).

The full-recipe cells are read from git (``--before``, the commit whose results/reference/ holds
them); the early-stop cells from the working tree's results/reference/. Cells are matched by id
(early stop is not part of a cell's id). For every study it prints the GD cells compared, how many
have the same minimum width, stable width and stored flag, and the GD epochs trained on each side
(a full-recipe probe trains ``gd_epochs``; an early-stop probe records ``epochs_run``).

    python benchmarks/early_stop_rerun.py --before aba171c capacity_isotropic rho_law ...
"""
from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ("min_width", "stable_width", "stored")


def committed(rev: str, study: str, table: str) -> pd.DataFrame:
    path = f"results/reference/{study}/{study}-{table}.csv"
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return pd.read_csv(io.StringIO(text))


def current(study: str, table: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / "results" / "reference" / study / f"{study}-{table}.csv")


def same(a: pd.Series, b: pd.Series) -> pd.Series:
    """Equal, with a missing value (nothing stored) equal to a missing value."""
    return (a == b) | (a.isna() & b.isna())


def epochs(probes: pd.DataFrame) -> float:
    gd = probes[probes["method"] == "gd"]
    if "epochs_run" not in gd:
        return float(gd["gd_epochs"].sum())
    return float(gd["epochs_run"].fillna(gd["gd_epochs"]).sum())


def compare(rev: str, study: str) -> dict:
    before, after = committed(rev, study, "cells"), current(study, "cells")
    gd = before[before["method"] == "gd"].merge(after, on="cell_id", suffixes=("_before", "_after"))
    identical = pd.concat([same(gd[f"{c}_before"], gd[f"{c}_after"]) for c in COMPARED], axis=1).all(axis=1)
    missing = int((before["method"] == "gd").sum()) - len(gd)
    probes_before, probes_after = committed(rev, study, "probes"), current(study, "probes")
    return {"study": study, "gd_cells": len(gd), "missing": missing, "identical": int(identical.sum()),
            "different": sorted(gd.loc[~identical, "cell_id"]),
            "gd_probes_before": int((probes_before["method"] == "gd").sum()),
            "gd_probes_after": int((probes_after["method"] == "gd").sum()),
            "epochs_before": epochs(probes_before), "epochs_after": epochs(probes_after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit holding the full-recipe reference CSVs")
    parser.add_argument("studies", nargs="+")
    args = parser.parse_args()
    rows = [compare(args.before, s) for s in args.studies]
    print(f"full recipe: results/reference at {args.before}; early stop: results/reference in this tree")
    print("| study | GD cells | same min/stable width and stored | GD probes before → after | GD epochs before → after | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["epochs_after"] / r["epochs_before"] if r["epochs_before"] else float("nan")
        print(f"| {r['study']} | {r['gd_cells']} | {r['identical']} | {r['gd_probes_before']} → {r['gd_probes_after']} "
              f"| {r['epochs_before']:,.0f} → {r['epochs_after']:,.0f} | {ratio:.3f} |")
        for cell in r["different"]:
            print(f"  differs: {r['study']} cell {cell}")
        if r["missing"]:
            print(f"  missing: {r['study']} has {r['missing']} GD cell(s) not in the rerun")
    cells = sum(r["gd_cells"] for r in rows)
    identical = sum(r["identical"] for r in rows) == cells and not any(r["missing"] for r in rows)
    before, after = sum(r["epochs_before"] for r in rows), sum(r["epochs_after"] for r in rows)
    print(f"RESULT early_stop_gd_cells {cells}")
    print(f"RESULT early_stop_widths_identical {int(identical)}")
    print(f"RESULT early_stop_epoch_ratio {after / before:.3f}")


if __name__ == "__main__":
    main()
