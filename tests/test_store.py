"""The Parquet store: atomic fragments, newest row per key, safe compaction, DuckDB views."""
from __future__ import annotations

import pandas as pd

from orchestrator.store import Store


def test_append_load_dedupe_and_compact(tmp_path):
    store = Store(tmp_path)
    store.append("probes", "s", [{"probe_id": "a", "x": 1}, {"probe_id": "b", "x": 2}])
    store.append("probes", "s", [{"probe_id": "a", "x": 3}])
    store.append("probes", "other", [{"probe_id": "a", "x": 9}])
    frame = store.load("probes", "s").sort_values("probe_id")
    assert frame["x"].tolist() == [3, 2] and set(frame["sweep"]) == {"s"}
    assert len(store.load("probes")) == 3
    store.compact("probes", "s")
    assert len(store.fragments("probes", "s")) == 1
    assert store.load("probes", "s").sort_values("probe_id")["x"].tolist() == [3, 2]
    assert not list(tmp_path.rglob("*.tmp"))


def test_interrupted_compaction_leaves_no_duplicates(tmp_path):
    store = Store(tmp_path)
    store.append("cells", "s", [{"cell_id": "c1", "v": 1.0}])
    store.append("cells", "s", [{"cell_id": "c2", "v": 2.0}])
    # A compaction killed after writing its merged file but before deleting the fragments.
    merged = store.load("cells", "s").drop(columns="sweep")
    store._write(store._dir("cells", "s"), merged, "part-99999999999999999999-compact.parquet")
    assert len(store.fragments("cells", "s")) == 3
    assert sorted(store.load("cells", "s")["cell_id"]) == ["c1", "c2"]
    con = store.connect()
    assert con.execute("select count(*) from cells").fetchone()[0] == 2


def test_duckdb_views_union_columns_across_fragments(tmp_path):
    store = Store(tmp_path)
    store.append("cells", "a", [{"cell_id": "1", "min_width": None, "method": "gd"}])
    store.append("cells", "a", [{"cell_id": "2", "min_width": 7, "method": "ntk", "extra": 1.5}])
    store.append("cells", "b", [{"cell_id": "1", "min_width": 3, "method": "gd"}])
    frame = store.connect().execute("select sweep, cell_id, min_width, extra from cells order by sweep, cell_id").df()
    assert frame["sweep"].tolist() == ["a", "a", "b"]
    assert pd.isna(frame["min_width"][0]) and frame["min_width"][1] == 7 and frame["extra"][1] == 1.5
