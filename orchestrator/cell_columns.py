"""Which columns of a recorded row identify a cell and which are its results, derived in one place.

A cell is identified by its parameters (the experiment's ``params``; they make its id); among them,
those that vary between the cells shown tell rows apart. The experiment's ``summary_columns`` list,
in reading order, the parameters a table leads with and the results it shows. Everything else on a
row is book-keeping (``BOOKKEEPING``, ``PROVENANCE``) or a further result the experiment recorded.
Tables, the progress line, lock messages and the MLflow runs all ask here.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.experiment import Experiment, is_set

BOOKKEEPING = ("cell_id", "experiment", "sweep")  # where a row belongs: neither a parameter nor a result
PROVENANCE = ("invocation_id", "code_version")  # who recorded a row (``orchestrator.provenance``)


def lead(experiment: Experiment) -> list[str]:
    """The parameters the experiment's summary leads with (the first is its lead column)."""
    return [c for c in experiment.reporting.summary_columns if c in experiment.params]


def results(experiment: Experiment) -> list[str]:
    """The results the experiment's summary shows, in its order."""
    return [c for c in experiment.reporting.summary_columns if c not in experiment.params]


def keys(experiment: Experiment, varying: Iterable[str]) -> list[str]:
    """The parameter columns of a table: the summary's own, then every other that varies, so no two
    rows look alike."""
    out = lead(experiment)
    return out + [k for k in varying if k not in out]


def apart(experiment: Experiment, varying: Iterable[str]) -> list[str]:
    """What tells one cell from the others in a line of text: the varying parameters, or the lead
    column when nothing varies."""
    return list(varying) or lead(experiment)[:1]


def name_keys(experiment: Experiment, varying: Iterable[str]) -> list[str]:
    """What a cell's MLflow run is named by: the lead column first, then the varying parameters."""
    first = lead(experiment)[:1]
    return first + [k for k in varying if k not in first]


def dashboard(experiment: Experiment, varying: Iterable[str]) -> tuple[list[str], list[str]]:
    """(params, metrics) the MLflow runs table shows: the table's keys, then the results and the
    experiment's further ``view_metrics``."""
    shown = results(experiment)
    return keys(experiment, varying), shown + [m for m in experiment.reporting.view_metrics if m not in shown]


def params_in(experiment: Experiment, columns: Iterable[str]) -> list[str]:
    """The experiment's parameters among ``columns`` (a table's), in parameter order."""
    have = set(columns)
    return [k for k in experiment.params if k in have]


def split(experiment: Experiment, row: Mapping) -> tuple[dict, dict]:
    """A finished cell's row as (config, summary): the parameters it has (a method's options are set
    only on that method's cells), and everything else but the book-keeping columns."""
    config = {k: row[k] for k in experiment.params if is_set(row.get(k))}
    summary = {k: v for k, v in row.items() if k not in experiment.params and k not in BOOKKEEPING}
    return config, summary
