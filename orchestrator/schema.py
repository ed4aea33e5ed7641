"""What the tables' columns are: renames of older fragments, the ``recorded_at`` type, and the column
dictionary behind ``factsweep query --describe`` and docs/schema.md.

One place, so a reader of a Parquet file written by an older version gets today's names and types
(``upgrade``), and the documentation of a column cannot drift from the code that writes it
(tests/test_schema_docs.py regenerates docs/schema.md and compares).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Columns older writers used, by table: old name -> today's. The fits table's estimates were named by
# their symbols, C beside c, which SQL does not tell apart (a record of what was written then: the
# laws of that time, never extended).
_SYMBOLS = {"C": "size_constant", "b": "size_offset", "s": "power_slope", "c": "power_intercept",
            "p": "rho_exponent", "a": "rho_intercept"}
RENAMED = {"fits": {f"{symbol}{suffix}": f"{name}{suffix}" for symbol, name in _SYMBOLS.items()
                    for suffix in ("", "_low", "_high", "_interval")}}
TIMESTAMP = pa.timestamp("us", tz="UTC")

# Every table's own columns (an experiment's parameters and results are described by the experiment).
COMMON = {
    "schema_version": "the row layout's version (orchestrator/identity.py)",
    "recorded_at": "when the row was written (UTC timestamp; older fragments' epoch seconds are read as one)",
    "lease_epoch": "the lease epoch of the driver that wrote the row: on a key's duplicates the newest epoch wins",
    "sweep": "the sweep name (the folder sweep=<name>; added on read)",
}
TABLES = {
    "probes": {
        "probe_id": "hash of (cell_id, the probe): the key",
        "cell_id": "hash of the experiment and the cell's resolved parameters",
        "experiment": "the experiment kind (capacity, transformer_capacity, ...)",
        "status": "ok, or what went wrong running the probe",
        "host": "the machine that ran it", "pid": "its worker process", "node_id": "its Ray node (empty inline)",
        "gpu_ids": "the GPUs Ray gave the task", "task_started_at": "when its task started (epoch seconds)",
        "task_seconds": "the task's wall time", "invocation_id": "the `run` that recorded it (table invocations)",
        "code_version": "the commit of the code that ran it (-dirty: uncommitted changes)",
    },
    "cells": {
        "cell_id": "hash of the experiment and the cell's resolved parameters: the key",
        "experiment": "the experiment kind", "invocation_id": "the `run` that finished it (table invocations)",
        "code_version": "the commit of the code that summarised it",
    },
    "fits": {
        "fit_id": "hash of (sweep, law, cell ids used, cell_set_id): the key",
        "law": "the law's name (below: each registered experiment's laws)",
        "x": "the law's x column", "y": "the law's y column",
        "r2": "R² of the fit", "n": "cells used", "seeds": "distinct seeds among them",
        "x_values": "distinct x values among them", "problems": "why the fit says nothing (empty: none)",
        "cell_ids": "the cells used",
        # here: each law's estimate columns (``tables``)
        "cell_set_id": "digest of the cell ids the fit's scope covers (a sweep file with its overrides, or a name)",
        "scope": "that scope in words",
        "invocation_id": "the `fit` or `report` command that wrote the row (one id per command)",
    },
    "invocations": {
        "invocation_id": "one `run` (or `mlflow-sync`) of a sweep: the key", "command": "the subcommand",
        "started_at": "when it started (ISO text, UTC)", "finished_at": "when it ended (empty while running)",
        "source": "the sweep file's absolute path", "file_sha256": "the sweep file's bytes",
        "overrides": "the overrides given (JSON list)", "profile": "the profile selected",
        "factsweep_version": "the installed package version", "code_version": "the commit it ran (-dirty: changes)",
        "host": "where it ran", "pid": "the driver process (a killed one is told from a live one by its lock)",
        "user": "who ran it", "python": "the Python version",
        "ray_address": "the Ray cluster (embedded: one started for the run)", "cells": "cells the file defines",
        "state": "running until it ends, then how it ended (e.g. finished, interrupted, killed)", "cells_done": "cells finished when it ended",
        "probes_run": "probes it ran", "probes_failed": "probes that failed",
    },
}


def laws() -> list:
    """Every law a registered experiment fits (``FitSpec.law``), each once, in registry order."""
    from orchestrator import registry
    found = {}
    for experiment in registry.every().values():
        for spec in experiment.reporting.fits:
            found.setdefault(spec.law.name, spec.law)
    return list(found.values())


def tables() -> dict[str, dict[str, str]]:
    """``TABLES`` with the fits table's columns of every registered law: the law's name, and per
    parameter its estimate, the ends of its 95% interval and how that interval was made."""
    found = laws()
    named = [f"{law.name} ({law.formula})" for law in found]
    estimates = {law.columns[symbol]: f"the {law.name} law's {symbol}" for law in found for symbol in law.parameters}
    ends = {f"{name}_{end}": f"{end} end of the 95% interval of {name}" for name in estimates for end in ("low", "high")}
    kinds = {f"{law.columns[s]}_interval": f"how {law.columns[s]}'s interval was made ({', '.join(law.intervals)})"
             for law in found for s in law.parameters}
    fits = {}
    for key, words in TABLES["fits"].items():
        fits[key] = " or ".join(filter(None, [", ".join(named[:-1]), named[-1]])) if key == "law" and named else words
        if key == "cell_ids":
            fits.update({**estimates, **ends, **kinds})
    return {**TABLES, "fits": fits}


# The newest fit of each (sweep, scope): what a report of that scope shows today.
VIEWS = {"fits_current": (
    "select * from fits f where f.invocation_id = (select g.invocation_id from fits g where g.sweep = f.sweep "
    "and g.cell_set_id = f.cell_set_id order by g.recorded_at desc limit 1)")}


def upgrade(table: str, part: pa.Table) -> pa.Table:
    """A fragment as today's code writes it: older column names renamed, ``recorded_at`` a timestamp,
    fits without scope columns given null ones."""
    renamed = RENAMED.get(table, {})
    if any(name in renamed for name in part.column_names):
        part = part.rename_columns([renamed.get(name, name) for name in part.column_names])
    if table == "fits":  # fits older than their scope columns: null there (never in fits_current)
        for name in ("cell_set_id", "scope", "invocation_id"):
            if name not in part.column_names:
                part = part.append_column(name, pa.nulls(part.num_rows, pa.string()))
    if "recorded_at" in part.column_names:
        index = part.column_names.index("recorded_at")
        part = part.set_column(index, "recorded_at", as_timestamp(part.column(index)))
    return part


def as_timestamp(column) -> pa.ChunkedArray:
    """Epoch seconds (float or int), ISO text or a timestamp, as a UTC timestamp column."""
    kind = column.type
    if kind == TIMESTAMP:
        return column
    if pa.types.is_timestamp(kind):
        utc = column if kind.tz else pc.assume_timezone(column, "UTC")
        return pc.cast(utc, TIMESTAMP, safe=False)  # nanoseconds (pandas' own) cut to the column's microseconds
    if pa.types.is_null(kind):
        return pc.cast(column, TIMESTAMP)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):  # epoch seconds or ISO text, as text
        import pandas as pd
        text = column.to_pandas()
        seconds = pd.to_numeric(text, errors="coerce")
        when = pd.to_datetime(seconds, unit="s", utc=True).fillna(
            pd.to_datetime(text.where(seconds.isna()), utc=True, format="ISO8601", errors="coerce"))
        return pa.chunked_array([pa.array(when, TIMESTAMP)])
    micros = pc.cast(pc.round(pc.multiply(pc.cast(column, pa.float64()), 1e6)), pa.int64())
    return pc.cast(micros, TIMESTAMP)


def meanings(table: str) -> dict[str, str]:
    """Every column of ``table`` this code documents: its own, the shared ones and, for cells and
    probes, each experiment's parameters (their one-line docs, as in docs/sweep-spec.md)."""
    from orchestrator import registry
    out = {**(tables()[table] if table == "fits" else TABLES[table]), **COMMON}  # only fits needs every kind's laws
    if table in ("cells", "probes"):
        for name in registry.names():
            for key, param in registry.get(name).params.items():
                out.setdefault(key, f"parameter of {name}: {param.doc}" if param.doc else f"parameter of {name}")
    return out


def describe(table: str, con=None):
    """The column dictionary of ``table``: each column recorded under the connection (with its SQL
    type) or documented here, and its meaning (empty for an experiment's result columns)."""
    import pandas as pd
    from orchestrator.errors import SpecError
    known = sorted(set(TABLES) | set(VIEWS))
    if table not in known:
        raise SpecError("query", "--describe", f"got {table!r}; allowed: {', '.join(known)}")
    words = meanings("fits" if table in VIEWS else table)
    types: dict[str, str] = {}
    if con is not None:
        try:
            types = {r[0]: r[1] for r in con.execute(f"describe {table}").fetchall()}  # table: one of `known`
        except Exception:  # noqa: BLE001 - nothing recorded under this root: the dictionary alone
            types = {}
    columns = list(types) + [c for c in words if c not in types]
    return pd.DataFrame({"column": columns, "type": [types.get(c, "") for c in columns],
                         "meaning": [words.get(c, "") for c in columns]})


def markdown() -> str:
    """docs/schema.md: regenerate with ``make docs`` (``orchestrator.generated_docs``)."""
    lines = ["# Tables and their columns", "",
             "Generated from `orchestrator/schema.py` by `python -m orchestrator.schema > docs/schema.md`",
             "(`tests/test_schema_docs.py` fails when it is stale). `factsweep query --describe TABLE` prints",
             "the same dictionary with the SQL type of each column recorded under a results folder. An",
             "experiment's parameters are columns of `cells` and `probes` (see docs/sweep-spec.md); its results",
             "(min_width, accuracy, ...) are described by the experiment's module.", "",
             "Every table also has:", "", "| column | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in COMMON.items()]
    for table, columns in tables().items():
        lines += ["", f"## {table}", "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in columns.items()]
    for view, sql in VIEWS.items():
        lines += ["", f"## {view} (view)", "", "The newest fit of each scope (sweep and cell_set_id): what a "
                  "report of that scope shows today. Fits written before the scope columns existed have none "
                  "and are never current.", "", "```sql", f"create view {view} as", sql, "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
