"""Put a committed study's CSVs back into a results store, so newer report code can redraw it.

A committed reference folder (``results/reference/<study>/``) holds every column of its cells and
probes (``<study>-cells.csv``, ``<study>-probes.csv``) and, in its report, one line per invocation that
recorded them. Loading these into an empty results root gives ``factsweep report`` the same rows the
original store held, so figures and findings can be written again by later code without re-running a
probe: the numbers, ids and code versions stay those of the recorded cells.

Usage: ``python -m orchestrator.reimport results/reference/<study> [--root results]``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from orchestrator.store import Store

# An invocation line of a report: - `<id>` <started_at> on <host>: overrides <json>, profile <p>, code <c>, <state>
INVOCATION = re.compile(r"^- `(?P<invocation_id>[0-9a-f]+)` (?P<started_at>\S+) on (?P<host>.*?): overrides "
                        r"(?P<overrides>\[.*?\]), profile (?P<profile>\S+), code (?P<code_version>\S+), "
                        r"(?P<state>\w+)$")
TEXT = {"code_version", "table_path", "host", "node_id", "gpu_ids", "status", "llm_model"}


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV text back to the store's types: ids and names stay text (an id of digits only is still an
    id), 'True'/'False' become booleans, every other column that parses as numbers becomes numbers."""
    out = {}
    for name, column in frame.items():
        if name in TEXT:  # written as '' when empty (a CSV cannot tell '' from missing)
            out[name] = column.fillna("")
            continue
        if name.endswith("_id"):
            out[name] = column
            continue
        present = column.dropna()
        if len(present) and present.isin(["True", "False"]).all():
            out[name] = column.map({"True": True, "False": False})
            continue
        numbers = pd.to_numeric(column, errors="coerce")
        out[name] = numbers if numbers.notna().sum() == len(present) else column
    return pd.DataFrame(out)


def invocations(report: Path) -> list[dict]:
    """The invocation rows a report lists (enough for the provenance lines of a new report)."""
    rows = []
    for line in report.read_text().splitlines():
        match = INVOCATION.match(line)
        if match:
            row = match.groupdict()
            row["profile"] = None if row["profile"] == "none" else row["profile"]
            rows.append({**row, "command": "run"})
    return rows


def reimport(folder: Path, root: Path) -> dict[str, int]:
    """Append the study in ``folder`` to the store at ``root``; return the rows written per table."""
    study = folder.name
    store, written = Store(root), {}
    for table in ("cells", "probes"):
        path = folder / f"{study}-{table}.csv"
        frame = typed(pd.read_csv(path, dtype=str, keep_default_na=True))
        rows = [{k: (v if v == v else None) for k, v in r.items()} for r in frame.to_dict("records")]
        store.append(table, study, rows)  # recorded_at and schema_version come from the CSV, not now
        written[table] = len(rows)
    runs = invocations(folder / f"{study}.md")
    store.append("invocations", study, runs)
    written["invocations"] = len(runs)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.reimport", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="committed study folders (results/reference/<study>)")
    parser.add_argument("--root", type=Path, default=Path("results"), help="the results root to load them into")
    args = parser.parse_args(argv)
    for folder in args.folders:
        missing = [p.name for p in (folder / f"{folder.name}-cells.csv", folder / f"{folder.name}-probes.csv",
                                    folder / f"{folder.name}.md") if not p.is_file()]
        if missing:
            print(f"reimport: {folder}: missing {', '.join(missing)}; allowed: a folder of results/reference/",
                  file=sys.stderr)
            return 2
        counts = reimport(folder, args.root)
        print(f"{folder.name}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
