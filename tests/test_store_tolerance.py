"""Reads tolerate fragments that older code or a user's ``COPY … TO`` left with an extra or duplicate
column (issue 34.5), and long runs compact as they go (34.12). Tiny stores, no Ray."""
from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import Store


def _odd_fragments(tmp_path) -> Store:
    """Sweeps ``s`` and ``t``; under ``s`` a user's COPY of the view (an extra ``sweep`` column) and a
    fragment with a duplicate column, as an interrupted older writer left one."""
    store = Store(tmp_path)
    store.append("probes", "s", [{"probe_id": "a", "x": 1}])
    store.append("probes", "t", [{"probe_id": "a", "x": 5}])
    store.connect().sql(f"COPY (SELECT * FROM probes WHERE sweep = 's') "
                        f"TO '{tmp_path}/probes/sweep=s/part-00000000000000000001-copy.parquet'")
    dup = pa.Table.from_arrays([pa.array(["b"]), pa.array([2]), pa.array([3]), pa.array([1.0])],
                               names=["probe_id", "x", "x", "recorded_at"])
    pq.write_table(dup, tmp_path / "probes/sweep=s/part-00000000000000000002-dup.parquet")
    return store


def test_extra_or_duplicate_columns_are_read_by_name_and_warned_once(tmp_path, caplog):
    store = _odd_fragments(tmp_path)
    with caplog.at_level(logging.WARNING, "factsweep"):
        for _ in range(2):
            frame = store.load("probes").sort_values(["sweep", "probe_id"])
            assert frame[["sweep", "probe_id", "x"]].values.tolist() == [["s", "a", 1], ["s", "b", 2], ["t", "a", 5]]
            counts = store.connect().sql("SELECT sweep, count(*) FROM probes GROUP BY sweep ORDER BY sweep").fetchall()
            assert counts == [("s", 2), ("t", 1)]
    assert not (tmp_path / "quarantine").exists()  # nothing damaged: no row set aside
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("\n" not in w for w in warned), warned
    assert any("dup.parquet" in w and "'x'" in w for w in warned) and any("copy.parquet" in w and "'sweep'" in w for w in warned)
    store.compact("probes", "s")  # compaction writes the rows by name: the odd columns are gone
    assert pq.ParquetFile(store.fragments("probes", "s")[0]).schema_arrow.names.count("x") == 1
    assert "sweep" not in pq.ParquetFile(store.fragments("probes", "s")[0]).schema_arrow.names


LONG = """
name: long
experiment: synthetic
fixed: {{num_probes: 60}}
grid: {{seed: [0]}}
packing: {{probes_per_task: 1}}
storage: {{root: '{root}'}}
"""


def test_a_long_run_compacts_as_it_goes(tmp_path, monkeypatch, shared_tracking):
    """A run killed after 50 one-probe tasks (so its clean-end compaction never came) leaves a bounded
    number of fragments, not one per task."""
    from orchestrator import runner, store as store_module
    from orchestrator.spec import load_spec
    monkeypatch.setattr(store_module, "COMPACT_EVERY", 20, raising=False)
    record, seen = runner.SweepRun.record, []

    def record_then_die(self, cell, rows):
        record(self, cell, rows)
        seen.append(1)
        if len(seen) == 50:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.SweepRun, "record", record_then_die)
    path = tmp_path / "long.yaml"
    path.write_text(LONG.format(root=tmp_path / "results"))
    try:
        runner.run_sweep(load_spec(path, [shared_tracking]), executor="inline", progress=False)
    except KeyboardInterrupt:
        pass
    store = Store(tmp_path / "results")
    assert len(store.load("probes", "long")) == 50
    assert len(store.fragments("probes", "long")) <= 20
