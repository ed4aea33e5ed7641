"""What a sweep still needs: a pure function of the spec and the probes recorded so far.

Because the next probes of a cell are derived only from its recorded probes, launching is resuming:
a killed sweep continues from its last recorded probe and a finished one has nothing to do.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field

import pandas as pd

from orchestrator.errors import SpecError
from orchestrator.identity import cell_id, probe_id
from orchestrator.search import Prediction, prediction_columns, recorded_prediction
from orchestrator.spec import Spec
from orchestrator.store import Store

DONE, PENDING, FAILED = "done", "pending", "failed"


@dataclass
class CellPlan:
    """One cell: its config, its recorded probes and what it needs next."""

    cell_id: str
    config: dict
    results: list[dict] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # probe id -> error message
    next_probes: list[dict] = field(default_factory=list)
    prediction: Prediction | None = None  # where the search opened its first round (see Experiment.predict)
    inputs: dict[str, str] = field(default_factory=dict)  # <param>_sha256 of each file the cell reads

    @property
    def blocked(self) -> list[dict]:
        """Next probes that failed before and wait for ``--retry-failed``."""
        return [p for p in self.next_probes if p["probe_id"] in self.failures]

    @property
    def state(self) -> str:
        if not self.next_probes:
            return DONE
        return FAILED if self.blocked else PENDING


def _clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}


def advance(spec: Spec, cell: CellPlan, finished: list[dict] | None = None) -> None:
    """Recompute the cell's next probes from its results (``Experiment.next_round``). A cell with
    nothing recorded yet first gets its prediction from ``finished`` (rows of finished cells), when the
    experiment predicts and the sweep file does not turn it off (``search.predict: false``)."""
    if not cell.results and finished is not None and spec.predict and spec.experiment.predict:
        cell.prediction = spec.experiment.predict(cell.config, finished)
    probes = spec.experiment.next_round(cell.config, cell.results, cell.prediction)
    cell.next_probes = [{**p, "probe_id": probe_id(cell.cell_id, p)} for p in probes]


def prediction_fields(spec: Spec, prediction: Prediction | None) -> dict:
    """What a probe row records of its cell's prediction, so a resumed cell continues the same search."""
    return prediction_columns(spec.experiment.search.param, prediction) if prediction is not None else {}


def _sha256(path: str, cache: dict) -> str:
    """The sha256 of a file's bytes, once per (file, size, modification time) in a plan."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in cache:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        cache[key] = digest.hexdigest()
    return cache[key]


def input_hashes(spec: Spec, config: dict, cache: dict) -> dict[str, str]:
    """``<param>_sha256`` of every file the cell reads (the experiment's ``input_files``)."""
    out = {}
    for key in spec.experiment.input_files:
        path = config.get(key)
        if isinstance(path, str) and path:
            try:
                out[f"{key}_sha256"] = _sha256(path, cache)
            except OSError as e:
                raise SpecError(spec.source, key, f"cannot read {path} ({e.strerror or e}); allowed: a readable "
                                                  "file") from None
    return out


def _check_inputs(spec: Spec, cell: CellPlan, row: dict) -> None:
    """A recorded row made from other bytes than the file holds now: refused, naming the file."""
    for column, now in cell.inputs.items():
        then = row.get(column)
        if isinstance(then, str) and then != now:
            key = column[:-len("_sha256")]
            raise SpecError(spec.source, key, f"{cell.config[key]} changed after cell {cell.cell_id}'s probes were "
                                              f"recorded from it (sha256 {then[:12]} then, {now[:12]} now): its "
                                              "results would not be of this file; allowed: the file as it was, or "
                                              "the new data under another path (new cells) or another sweep name")


def build_plan(spec: Spec, store: Store, finished: list[dict] | None = None) -> list[CellPlan]:
    """Every cell of ``spec`` with its recorded probes and next probes (cells not started yet open
    around a prediction from ``finished`` when given). A cell whose recorded probes were made from
    other bytes of an input file than it holds now raises SpecError naming the file."""
    recorded = store.load("probes", spec.name, missing_ok=True)
    by_cell = {cid: rows for cid, rows in recorded.groupby("cell_id")} if len(recorded) else {}
    plans, hashed = [], {}
    for config in spec.cells:
        cell = CellPlan(cell_id(spec.experiment.name, config), config, inputs=input_hashes(spec, config, hashed))
        rows = by_cell.get(cell.cell_id, pd.DataFrame())
        for row in rows.sort_values("recorded_at").to_dict("records") if len(rows) else []:
            row = _clean(row)
            _check_inputs(spec, cell, row)
            if row["status"] == "ok":
                cell.results.append(row)
            else:
                cell.failures[row["probe_id"]] = row.get("error", "")
        if spec.experiment.search is not None:
            cell.prediction = recorded_prediction(spec.experiment.search.param, cell.results)
        advance(spec, cell, finished)
        plans.append(cell)
    return plans


def counts(plans: list[CellPlan]) -> dict:
    states = [p.state for p in plans]
    return {"cells": len(plans), "done": states.count(DONE), "pending": states.count(PENDING),
            "failed": states.count(FAILED), "probes_recorded": sum(len(p.results) for p in plans),
            "probes_next": sum(len(p.next_probes) for p in plans if p.state == PENDING)}
