"""What a command covers: exactly the cells a sweep file defines, or every cell recorded under a name.

Invocations with different overrides record cells under one sweep name. A summary, report, fit or
MLflow view of a sweep *file* covers the file's cells (selected by id, so its overrides and profile
count) and never mixes in the others, which are counted, and listed or set aside by
``factsweep extra-cells``. A bare sweep *name* means every cell recorded under it, and says so.

A scope has a name of its own, which its report (``reports/<name>.md``) and its MLflow sweep run go
by: the sweep's name for a file whose overrides keep its cells (none, or ``storage.root=...``) and for a
bare name; ``<sweep>@<8 hex of the scope id>`` for a file whose overrides change the cell set, so a
one-cell try-out never replaces the report of the whole file.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from orchestrator import cell_columns, registry
from orchestrator.experiment import Experiment
from orchestrator.identity import cell_id
from orchestrator.spec import Spec, varying_keys
from orchestrator.location import RemoteRoot, is_remote
from orchestrator.store import Store


def record_root(root) -> Path | RemoteRoot:
    """A scope's root: a Path, or an object-store URI whose derived files (reports) go to a local folder."""
    return RemoteRoot(root) if is_remote(str(root)) else Path(root)


def cell_set_id(cell_ids) -> str:
    return hashlib.sha256("\n".join(sorted(cell_ids)).encode()).hexdigest()


def _file_cells(spec: Spec) -> frozenset[str] | None:
    """The cell ids the sweep file defines without any override (None when it does not load alone)."""
    from orchestrator.errors import SpecError
    from orchestrator.spec import load_spec
    try:
        plain = load_spec(spec.source)
    except (SpecError, ValueError, OSError):
        return None
    return frozenset(cell_id(plain.experiment.name, c) for c in plain.cells)


@dataclass(frozen=True)
class Scope:
    """A sweep name plus the cell ids a command covers (None: all of the name's cells)."""

    sweep: str
    root: Path | RemoteRoot
    experiment: Experiment
    cell_ids: frozenset[str] | None
    label: str
    spec: Spec | None = None

    @classmethod
    def of_spec(cls, spec: Spec) -> Scope:
        ids = frozenset(cell_id(spec.experiment.name, c) for c in spec.cells)
        overrides = f" with {' '.join(spec.overrides)}" if spec.overrides else ""
        return cls(spec.name, record_root(spec.results_root), spec.experiment, ids,
                   f"the {len(ids)} cells of {spec.source}{overrides}", spec)

    @classmethod
    def of_name(cls, root: str | Path, sweep: str) -> Scope:
        """Every cell recorded under ``sweep``; raises UnknownResults when there is none."""
        store = Store(root)
        store.load("probes", sweep)  # UnknownResults (with a did-you-mean) when nothing was ever recorded
        rows = [store.load(t, sweep, missing_ok=True) for t in ("cells", "probes")]
        kinds = sorted({k for r in rows if "experiment" in r for k in r["experiment"].dropna()})
        if len(kinds) != 1 or kinds[0] not in registry.names():
            raise LookupError(f"sweep {sweep!r} under {root} holds cells of experiments {kinds}; allowed: "
                              "exactly one known experiment kind per sweep name")
        return cls(sweep, record_root(root), registry.get(kinds[0]), None, f"every cell recorded under the name {sweep!r} "
                   "(give the sweep file instead to cover only the cells it defines)")

    @property
    def scope_id(self) -> str | None:
        """The cell set's identity: sha256 of the sorted cell ids (None for every cell under a name)."""
        return None if self.cell_ids is None else cell_set_id(self.cell_ids)

    @cached_property
    def report_name(self) -> str:
        """``<sweep>`` when the scope is the file's own cells (or every cell under the name), else
        ``<sweep>@<first 8 hex of the scope id>``."""
        if self.spec is None or not self.spec.overrides or self.cell_ids == _file_cells(self.spec):
            return self.sweep
        return f"{self.sweep}@{self.scope_id[:8]}"

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(rows of this scope's cells, rows of other cells)."""
        if self.cell_ids is None or not len(frame):
            return frame, frame.iloc[0:0]
        inside = frame["cell_id"].isin(self.cell_ids)
        return frame[inside].reset_index(drop=True), frame[~inside].reset_index(drop=True)

    def load(self, store: Store, table: str) -> pd.DataFrame:
        """This scope's rows of ``table`` (empty when nothing is recorded yet)."""
        return self.split(store.load(table, self.sweep, missing_ok=True))[0]

    def others(self, store: Store) -> pd.DataFrame:
        """Cells recorded under the name (finished or with probes) that this scope does not cover:
        one row per cell, its parameters and the invocation that recorded it last."""
        frames = [self.split(store.load(t, self.sweep, missing_ok=True))[1] for t in ("cells", "probes")]
        rows = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
        if rows is None:
            return pd.DataFrame()
        return rows.sort_values("recorded_at", kind="stable").drop_duplicates("cell_id", keep="last")

    def varying(self, cells: pd.DataFrame) -> tuple[str, ...]:
        """Parameters that differ between the covered cells (the file's when there is one)."""
        if self.spec is not None:
            return self.spec.varying
        return varying_keys(cells.to_dict("records"), cell_columns.params_in(self.experiment, cells))
