"""A cell's results are tied to the bytes of the files it reads: every probe and cell row records the
sha256 of each input file (`table_path`); when the file at that path holds other data later, `plan` and
`run` refuse in one line naming the file instead of reporting the old widths as done. (Before: `plan`
said done and kept the old widths and rho.) Cell ids do not change (committed references keep theirs)."""
from __future__ import annotations

import hashlib

import numpy as np

from orchestrator.cli import main
from orchestrator.store import Store

SWEEP = """
name: tables
experiment: capacity
fixed: {{geometry: llm_token_embeddings, table_path: '{table}', method: hebbian_whitened}}
grid: {{d: [8], num_facts: [16]}}
search: {{low: 1, high: 64, strategy: kary, arity: 3}}
storage: {{root: '{root}'}}
"""


def test_a_replaced_input_file_is_refused_naming_it(tmp_path, capsys, shared_tracking):
    table = tmp_path / "tokens.npy"
    np.save(table, np.random.default_rng(0).standard_normal((64, 8)))
    path = tmp_path / "tables.yaml"
    path.write_text(SWEEP.format(table=table, root=tmp_path / "results"))
    assert main(["run", str(path), shared_tracking, "--inline"]) == 0
    store = Store(tmp_path / "results")
    probes, cells = store.load("probes", "tables"), store.load("cells", "tables")
    recorded = hashlib.sha256(table.read_bytes()).hexdigest()
    assert set(probes["table_path_sha256"]) == {recorded} and list(cells["table_path_sha256"]) == [recorded]
    assert main(["plan", str(path), shared_tracking]) == 0  # the same bytes: done
    assert "1 done" in capsys.readouterr().out

    np.save(table, np.random.default_rng(1).standard_normal((64, 8)))  # other data, the same shape
    before = sorted(p.name for p in (tmp_path / "results").rglob("*.parquet"))
    for command in ("plan", "run"):
        assert main([command, str(path), shared_tracking]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1, (out, err)
        assert err.startswith(f"factsweep: error: {path}: table_path: {table} changed after "), err
        assert "allowed: the file as it was, or the new data under another path" in err, err
    assert sorted(p.name for p in (tmp_path / "results").rglob("*.parquet")) == before

    moved = tmp_path / "tokens-v2.npy"  # the new data under another path: new cells, the old ones kept
    table.rename(moved)
    assert main(["run", str(path), f"fixed.table_path={moved}", shared_tracking, "--inline"]) == 0
    assert len(store.load("cells", "tables")) == 2
