"""``recorded_at`` is a UTC timestamp; fragments that stored it as epoch seconds or text read the same."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import Store

WHEN = pd.Timestamp("2026-12-05 05:00:00.25", tz="UTC")


def _old_fragment(root, name: str, recorded_at, key: str, x: int) -> None:
    folder = root / "probes" / "sweep=s"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"probe_id": [key], "x": [x], "recorded_at": [recorded_at]}), folder / f"part-{name}.parquet")


def test_new_rows_are_timestamps_and_old_floats_and_text_read_as_the_same_instants(tmp_path):
    _old_fragment(tmp_path, "1", WHEN.timestamp(), "a", 1)
    _old_fragment(tmp_path, "2", "2026-12-05T05:00:00.250000+00:00", "b", 2)
    _old_fragment(tmp_path, "3", str(WHEN.timestamp()), "c", 3)
    Store(tmp_path).append("probes", "s", [{"probe_id": "d", "x": 4}])
    frame = Store(tmp_path).load("probes", "s").set_index("probe_id")
    assert isinstance(frame["recorded_at"].dtype, pd.DatetimeTZDtype)
    assert frame.loc["a", "recorded_at"] == frame.loc["b", "recorded_at"] == frame.loc["c", "recorded_at"] == WHEN
    assert frame.loc["d", "recorded_at"] > WHEN
    with Store(tmp_path).connect() as con:
        kind, = con.execute("select typeof(recorded_at) from probes limit 1").fetchone()
        assert kind.startswith("TIMESTAMP")
        assert con.execute("select probe_id from probes where recorded_at = timestamptz '2026-12-05 05:00:00.25+00' "
                           "order by 1").fetchall() == [("a",), ("b",), ("c",)]


def test_the_newest_row_per_key_is_still_chosen_across_old_and_new_fragments(tmp_path):
    _old_fragment(tmp_path, "1", WHEN.timestamp(), "a", 1)  # an older float fragment
    Store(tmp_path).append("probes", "s", [{"probe_id": "a", "x": 2}])  # now: newer
    assert Store(tmp_path).load("probes", "s")["x"].tolist() == [2]
    with Store(tmp_path).connect() as con:
        assert con.execute("select x from probes").fetchall() == [(2,)]
