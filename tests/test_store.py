"""The Parquet store: atomic fragments, newest row per key, safe compaction, DuckDB views, and reads that
survive damaged fragments, concurrent compaction and hostile folder names. Each test runs on a local folder
and on an object store (a real S3-compatible server on loopback: ``object_store`` in conftest.py)."""
from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.store import Store


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.slow)])
def root(request, tmp_path):
    """The store's root: ``tmp_path`` itself, or a fresh prefix of the session's S3 bucket."""
    return tmp_path if request.param == "folder" else request.getfixturevalue("object_store").root()


def under(root, sub: str):
    """``root/sub`` as a storage root (a path, or the URI with the prefix extended)."""
    if not isinstance(root, str):
        return root / sub
    base, _, query = root.partition("?")
    return f"{base}/{sub}?{query}"


def copy_folder(store: Store, source: str, target: str, *, move: bool = False, pattern: str = "*/*") -> None:
    """Copy (or move) every file under ``source`` (``pattern``: below it) to ``target``, on either kind of root."""
    for key in store.location.files(source, pattern):
        store.location.write_bytes(target + key[len(source):], store.location.read_bytes(key))
        if move:
            store.location.delete(key)


def test_append_load_dedupe_and_compact(root, tmp_path):
    store = Store(root)
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


def test_interrupted_compaction_leaves_no_duplicates(root):
    store = Store(root)
    store.append("cells", "s", [{"cell_id": "c1", "v": 1.0}])
    store.append("cells", "s", [{"cell_id": "c2", "v": 2.0}])
    # A compaction killed after writing its merged file but before deleting the fragments.
    merged = store.load("cells", "s").drop(columns="sweep")
    store._write(store._dir("cells", "s"), merged, "part-99999999999999999999-compact.parquet")
    assert len(store.fragments("cells", "s")) == 3
    assert sorted(store.load("cells", "s")["cell_id"]) == ["c1", "c2"]
    con = store.connect()
    assert con.execute("select count(*) from cells").fetchone()[0] == 2


def test_duckdb_views_union_columns_across_fragments(root):
    store = Store(root)
    store.append("cells", "a", [{"cell_id": "1", "min_width": None, "method": "gd"}])
    store.append("cells", "a", [{"cell_id": "2", "min_width": 7, "method": "ntk", "extra": 1.5}])
    store.append("cells", "b", [{"cell_id": "1", "min_width": 3, "method": "gd"}])
    frame = store.connect().execute("select sweep, cell_id, min_width, extra from cells order by sweep, cell_id").df()
    assert frame["sweep"].tolist() == ["a", "a", "b"]
    assert pd.isna(frame["min_width"][0]) and frame["min_width"][1] == 7 and frame["extra"][1] == 1.5


def _fragment_bytes(store: Store, table: str, sweep: str) -> list[bytes]:
    return [p.read_bytes() for p in store.fragments(table, sweep)]


def test_damaged_fragments_are_quarantined_and_their_rows_planned_again(root, caplog):
    """Empty, truncated and corrupt fragments are moved aside (never deleted), one warning line each;
    every reader (pandas, SQL, the recorded-kind check) carries on with the rest."""
    store = Store(root)
    for i in range(5):
        store.append("probes", "s", [{"probe_id": f"p{i}.{j}", "experiment": "synthetic", "x": float(j)}
                                     for j in range(200)])
    parts = store.fragments("probes", "s")
    good = parts[0].read_bytes()
    parts[1].write_bytes(b"")                                          # empty
    parts[2].write_bytes(good[: len(good) // 2])                       # truncated
    parts[3].write_bytes(good[:600] + bytes(reversed(good[600:1400])) + good[1400:])  # corrupt column data
    damaged = {p.name: p.read_bytes() for p in parts[1:4]}
    with caplog.at_level(logging.WARNING, logger="factsweep"):
        frame = store.load("probes", "s")
    assert sorted(set(frame["probe_id"].str.split(".").str[0])) == ["p0", "p4"] and len(frame) == 400
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and all("\n" not in w and "its probes run again" in w for w in warnings)
    quarantined = {k.rsplit("/", 1)[1]: store.location.read_bytes(k)
                   for k in store.location.files("quarantine/probes/sweep=s", "*")}
    assert quarantined == damaged, "a damaged fragment was altered or lost"
    assert len(store.fragments("probes", "s")) == 2
    # Once moved aside, nothing warns again; SQL and the kind check see the same rows.
    caplog.clear()
    parts = store.fragments("probes", "s")
    parts[1].write_bytes(b"PAR1")
    with caplog.at_level(logging.WARNING, logger="factsweep"):
        assert store.connect().execute("select count(*) from probes").fetchone()[0] == 200
        assert store.kinds("s") == {"synthetic"}
        assert len(store.load("probes", "s")) == 200
    assert len(caplog.records) == 1 and parts[1].name in caplog.records[0].getMessage()


COMPACTOR = """
import sys, time
from orchestrator.store import Store
store, deadline = Store(sys.argv[1]), time.time() + float(sys.argv[2])
print("ready", flush=True)
n = 0
while time.time() < deadline:
    for _ in range(4):  # the same 50 keys again, as a rerun records them
        store.append("probes", "s", [{"probe_id": f"p{k}", "experiment": "synthetic", "n": n} for k in range(50)])
        n += 1
    store.compact("probes", "s")
print(n, flush=True)
"""


def test_reads_while_another_process_compacts_never_fail(root):
    """status, report and query read while `run` compacts: a fragment merged away between the listing
    and the read must cost a re-read, never an error or a missing row."""
    store = Store(root)
    store.append("probes", "s", [{"probe_id": f"p{k}", "experiment": "synthetic", "n": -1} for k in range(50)])
    writer = subprocess.Popen([sys.executable, "-c", COMPACTOR, str(root), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        reads = 0
        while writer.poll() is None:
            assert set(store.load("probes", "s")["probe_id"]) == {f"p{k}" for k in range(50)}
            assert store.connect().execute("select count(distinct probe_id) from probes").fetchone()[0] == 50
            reads += 1
        writes = int(writer.stdout.read().split()[-1])
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0 and reads >= 3 and writes >= 8, (reads, writes)
    print(f"\ncompaction race: {reads} reads (pandas and SQL) during {writes} appends and {writes // 4} compactions, "
          "every read complete")


HOSTILE = "x\" AS SELECT 1; COPY (SELECT 42) TO 'pwned.csv'; CREATE VIEW \"y"


@pytest.mark.parametrize("folder", [HOSTILE, 'quote"d', "a..b", "new\nline"], ids=["sql_injection", "quote", "dotdot", "newline"])
def test_query_never_turns_folder_names_into_sql(root, tmp_path, monkeypatch, capsys, caplog, folder):
    """A folder under the results root named like SQL is skipped with one warning; nothing it says runs."""
    if isinstance(root, str) and "\n" in folder:
        pytest.skip("S3 keys with a newline cannot be written (the server answers 404): no such folder can exist")
    monkeypatch.chdir(tmp_path)
    root = under(root, "results")
    store = Store(root)
    store.append("cells", "real", [{"cell_id": "c1", "experiment": "synthetic", "recorded_at": 1.0}])
    copy_folder(store, "cells", folder)
    with caplog.at_level(logging.WARNING, logger="factsweep"):
        code = main(["query", "select count(*) as n from cells", "--root", str(root)])
    out, err = capsys.readouterr()
    assert code == 0 and out.split()[-1] == "1" and err == ""
    assert not list(tmp_path.rglob("pwned.csv"))
    assert [r.getMessage().count("\n") for r in caplog.records] == [0]
    assert "skipping folder" in caplog.records[0].getMessage()


def test_sweep_folder_with_a_bad_name_is_skipped(root, caplog):
    store = Store(root)
    store.append("cells", "good", [{"cell_id": "c1"}])
    copy_folder(store, "cells/sweep=good", 'cells/sweep=a"b', move=True, pattern="*")
    store.append("cells", "good", [{"cell_id": "c2"}])
    with caplog.at_level(logging.WARNING, logger="factsweep"):
        assert store.load("cells")["cell_id"].tolist() == ["c2"]
        assert store.connect().execute("select cell_id from cells").fetchall() == [("c2",)]
    assert caplog.records and all("a\"b" in r.getMessage() for r in caplog.records)


def test_query_reads_the_root_it_is_given_even_with_glob_characters(root, capsys):
    """`--root 'res[1]'` reads res[1], not res1 (a glob would match res1)."""
    Store(under(root, "res[1]")).append("cells", "s", [{"cell_id": "mine"}])
    Store(under(root, "res1")).append("cells", "s", [{"cell_id": "other"}])
    Store(under(root, "res*")).append("cells", "t", [{"cell_id": "star"}])
    assert main(["query", "select cell_id from cells", "--csv", "--root", str(under(root, "res[1]"))]) == 0
    assert capsys.readouterr().out.split() == ["cell_id", "mine"]
    assert main(["query", "select cell_id from cells", "--csv", "--root", str(under(root, "res*"))]) == 0
    assert capsys.readouterr().out.split() == ["cell_id", "star"]
