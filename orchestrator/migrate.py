"""Results written by an older factsweep: adopted when only their ids changed, refused when their columns
mean something else.

A cell id hashes the cell's whole resolved config, so an option added to an experiment since (at its
default, which reproduces the old behaviour) gives every existing cell a new id, and a resume would run
them all again. ``adoptable`` finds recorded cells that equal a cell of the sweep file on every parameter
they recorded, and on every parameter added since hold its default; ``adopt`` records their rows again
under the new id (probes keep their probe ids, so the copy replaces the old row; the old cell row is
moved to ``set_aside``, never deleted). Rows of an older result schema (``identity.SCHEMA_VERSION``: the
same column meant something else) are never adopted: ``check_schema_versions`` refuses the sweep in one
line that says how to go on.
"""
from __future__ import annotations

import math

import pandas as pd

from orchestrator.errors import SpecError
from orchestrator.experiment import is_set
from orchestrator.identity import SCHEMA_VERSION, cell_id
from orchestrator.spec import Spec
from orchestrator.store import Store

DROPPED = ("sweep", "recorded_at", "schema_version", "lease_epoch")  # the store stamps these again


def _plain(value):
    """A value read back from Parquet as the spec holds it: numpy scalars and arrays as Python's."""
    value = value.tolist() if hasattr(value, "tolist") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _matches(spec: Spec, row: dict, config: dict) -> bool:
    for key, value in config.items():
        if key in row:
            if _plain(row[key]) != value:
                return False
        elif value is not None and value != spec.experiment.params[key].default:
            return False  # an option added since, set to other than the old behaviour
    return True


def _versions(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame.get("schema_version", pd.Series(SCHEMA_VERSION, index=frame.index)),
                         errors="coerce").fillna(0)


def adoptable(spec: Spec, store: Store) -> dict[str, str]:
    """{old cell id: new cell id} of recorded cells of the current schema that are cells of this file
    under another id (and that id has no row of its own)."""
    cells = store.load("cells", spec.name, missing_ok=True)
    if not len(cells):
        return {}
    ids = {cell_id(spec.experiment.name, c): c for c in spec.cells}
    have = set(cells["cell_id"])
    mapping = {}
    current = cells[_versions(cells) == SCHEMA_VERSION]
    for row in current[~current["cell_id"].isin(ids)].to_dict("records"):
        if row.get("experiment", spec.experiment.name) != spec.experiment.name:
            continue
        for new, config in ids.items():
            if new not in have and new not in mapping.values() and _matches(spec, row, config):
                mapping[row["cell_id"]] = new
                break
    return mapping


def adopt(spec: Spec, store: Store, mapping: dict[str, str]) -> tuple[int, int]:
    """Record the rows of each old cell id again under its new id; returns (cells, probes) adopted.
    The caller holds the sweep's lock."""
    if not mapping:
        return 0, 0
    configs = {cell_id(spec.experiment.name, c): c for c in spec.cells}
    moved = {}
    for table in ("probes", "cells"):
        frame = store.load(table, spec.name, missing_ok=True)
        rows = frame[frame["cell_id"].isin(mapping)].to_dict("records") if len(frame) else []
        out = []
        for row in rows:
            new = mapping[row["cell_id"]]
            kept = {k: v for k, v in row.items() if k not in DROPPED and is_set(_plain(v))}
            out.append({**kept, **configs[new], "cell_id": new, "adopted_from": row["cell_id"]})
        store.append(table, spec.name, out)
        moved[table] = len(out)
    store.set_aside("cells", spec.name, set(mapping))  # the old cell rows: kept aside, no longer "other cells"
    return moved["cells"], moved["probes"]


def check_schema_versions(spec: Spec, store: Store) -> None:
    """Refuse a sweep whose name holds rows of an older result schema: their columns mean something
    else, so they can neither be resumed nor reported beside this code's rows."""
    old = {}
    for table in ("cells", "probes"):
        frame = store.load(table, spec.name, missing_ok=True)
        if len(frame):
            versions = _versions(frame)
            for version, group in frame[versions < SCHEMA_VERSION].groupby(versions[versions < SCHEMA_VERSION]):
                old.setdefault(int(version), set()).update(group["cell_id"])
    if old:
        version, cells = min(old.items())
        raise SpecError(spec.source, "name", f"sweep {spec.name!r} under {store.root} holds {len(cells)} cell(s) recorded "
                                             f"under result schema {version} (this code writes {SCHEMA_VERSION}; "
                                             "their columns mean something else); allowed: another sweep name, or "
                                             f"`factsweep extra-cells {spec.source} --move-aside` to set them aside")
