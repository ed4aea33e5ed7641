"""The fits table: unambiguous column names (no two columns of any table differ only by case), older
fragments read with today's names, and rows that say which scope they fit (view fits_current)."""
from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import schema
from orchestrator.fitting import fit_laws, fit_scope
from orchestrator.scope import Scope
from orchestrator.spec import load_spec
from orchestrator.store import Store

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "results" / "reference"
SWEEP = REPO / "sweeps" / "capacity_isotropic.yaml"


def _case_clashes(columns) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    clashes = []
    for name in columns:
        if name.lower() in seen and seen[name.lower()] != name:
            clashes.append((seen[name.lower()], name))
        seen.setdefault(name.lower(), name)
    return clashes


def _fits_rows() -> list[dict]:
    cells = pd.read_csv(REFERENCE / "capacity_isotropic" / "capacity_isotropic-cells.csv")
    spec = load_spec(SWEEP)
    laws = fit_laws(cells, spec.experiment.reporting.fits, spec.varying, n_boot=20)
    assert {law.spec.law.name for law in laws} >= {"size", "power"}
    return [law.row("capacity_isotropic") for law in laws]


def test_no_two_columns_of_any_table_differ_only_by_case():
    """Every table as written: each study's cells and probes (every experiment kind), real fits rows,
    and the columns the dictionary declares for every table."""
    tables = {f"{Path(f).parent.name}/{Path(f).stem}": list(pd.read_csv(f, nrows=1).columns)
              for f in glob.glob(str(REFERENCE / "*" / "*-*.csv"))}
    tables["fits (written)"] = sorted({k for row in _fits_rows() for k in row} | set(schema.COMMON))
    for name, columns in schema.tables().items():
        tables[f"{name} (declared)"] = list(columns) + list(schema.COMMON)
    assert len(tables) > 20
    clashes = {name: _case_clashes(cols) for name, cols in tables.items() if _case_clashes(cols)}
    assert clashes == {}
    assert _case_clashes(["C", "c"]) == [("C", "c")]  # the check itself catches the old fits columns


def test_fits_rows_name_their_estimates_in_words():
    row = next(r for r in _fits_rows() if r["law"] == "size")
    assert {"size_constant", "size_constant_low", "size_offset_high", "size_constant_interval"} <= set(row)
    assert not {"C", "c", "b", "s"} & set(row)


def test_an_older_fits_fragment_is_read_with_todays_names(tmp_path):
    folder = tmp_path / "fits" / "sweep=old"
    folder.mkdir(parents=True)
    old = pa.table({"fit_id": ["f1", "f2"], "law": ["size", "power"], "recorded_at": [1796405122.5, 1796405123.5],
                    "C": [2.0, None], "C_low": [1.5, None], "b": [3.0, None], "s": [None, 0.9], "c": [None, -1.0]})
    pq.write_table(old, folder / "part-1.parquet")
    frame = Store(tmp_path).load("fits", "old")
    assert frame.set_index("fit_id").loc["f1", "size_constant"] == 2.0
    assert frame.set_index("fit_id").loc["f2", "power_intercept"] == -1.0
    with Store(tmp_path).connect() as con:
        got = con.execute("select power_slope, power_intercept, size_constant, size_constant_low from fits "
                          "where law = 'power'").fetchall()
        assert got == [(0.9, -1.0, None, None)]
        assert con.execute("select count(*) from fits_current").fetchone() == (0,)  # no scope: never current


def test_fits_rows_carry_their_scope_and_fits_current_keeps_the_newest_per_scope(tmp_path):
    store = Store(tmp_path)
    for table in ("cells", "probes"):
        rows = pd.read_csv(REFERENCE / "capacity_isotropic" / f"capacity_isotropic-{table}.csv")
        store.append(table, "capacity_isotropic", rows.drop(columns=["recorded_at"]).to_dict("records"))
    whole = Scope.of_spec(load_spec(SWEEP, [f"storage.root={tmp_path}"]))
    part = Scope.of_spec(load_spec(SWEEP, [f"storage.root={tmp_path}", "seeds=[0,1]"]))
    first = len(fit_scope(store, whole, n_boot=20))
    second = len(fit_scope(store, whole, n_boot=20))
    third = len(fit_scope(store, part, n_boot=20))
    fits = store.load("fits", "capacity_isotropic")  # the second fit of one scope replaced the first (same key)
    assert fits["cell_set_id"].nunique() == 2 and fits["invocation_id"].nunique() == 2
    assert set(fits["scope"]) == {whole.label, part.label}
    scope_id = fits.loc[fits["scope"] == whole.label, "cell_set_id"].iloc[0]
    store.append("fits", "capacity_isotropic", [{"fit_id": "stale", "law": "power", "cell_set_id": scope_id,
                                                 "scope": whole.label, "invocation_id": "old", "recorded_at": 1.0}])
    with store.connect() as con:  # an earlier fit of the scope over other cells: in fits, never current
        assert con.execute("select count(*) from fits where fit_id = 'stale'").fetchone() == (1,)
        assert con.execute("select count(*) from fits_current where fit_id = 'stale'").fetchone() == (0,)
        current = dict(con.execute("select scope, count(distinct invocation_id) || ' ' || count(*) from fits_current "
                                   "group by scope").fetchall())
        newest = con.execute("select invocation_id from fits where scope = ? order by recorded_at desc limit 1",
                             [whole.label]).fetchone()[0]
        kept = con.execute("select distinct invocation_id from fits_current where scope = ?", [whole.label]).fetchall()
    assert current == {whole.label: f"1 {second}", part.label: f"1 {third}"} and first == second
    assert kept == [(newest,)]
