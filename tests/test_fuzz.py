"""Property-based tests (hypothesis) of every reader of a file someone else wrote: sweep files, overrides,
safetensors headers, embedding tables and Parquet fragments of the record.

For every generated example: the command exits 0, 1 or 2 (or the API raises a ``ValueError``, whose
file readers raise ``BadFile``), a refusal is at most 3 lines with no traceback, a refused command writes
nothing, and a damaged store loses no row of its undamaged fragments. ``FACTSWEEP_FUZZ_EXAMPLES`` sets
the examples per target (default 40, the slow lane's budget; ``make fuzz`` runs 1000).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from factmlp.embeddings.tables import load_table
from orchestrator.cli import main
from orchestrator.store import Store

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FACTSWEEP_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="FACTSWEEP_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``factsweep ARGV`` in this process, from ``cwd``; any exception that escapes fails the example."""
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's own usage errors
                code = e.code
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def assert_clean(code, err: str) -> None:
    assert code in (0, 1, 2), f"exit {code}: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    if code:
        assert 1 <= len(err.splitlines()) <= 3, f"{len(err.splitlines())} lines: {err[:2000]!r}"


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


# --- sweep files and overrides -------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["${oc.env:HOME}", "../..", "a\x00b", "~", "gd",
                                                           "spherical", "!!python/name:os.system", "8"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=12)
KEYS = ["name", "experiment", "fixed", "grid", "zip", "seeds", "search", "resources", "packing", "tracking",
        "storage", "cluster", "description", "profiles", "profile"]
sweeps = st.fixed_dictionaries(
    {"name": st.sampled_from(["f", "x" * 101, "a/b", ".."]) | st.text(max_size=10),
     "experiment": st.sampled_from(["synthetic", "capacity", "nope"]) | st.text(max_size=5)},
    optional={"fixed": st.dictionaries(st.sampled_from(["num_probes", "sleep", "rounds", "fail_index", "failure", "d",
                                                         "geometry", "method", "zz"]), values, max_size=3),
              "grid": st.dictionaries(st.sampled_from(["seed", "num_probes", "d"]),
                                      st.lists(st.integers(-3, 5), max_size=3) | values, max_size=2),
              "seeds": st.lists(st.integers(-1, 3), max_size=3) | values,
              "resources": st.dictionaries(st.sampled_from(["num_cpus", "num_gpus", "max_retries", "probe_timeout_s", "x"]),
                                           values, max_size=2),
              "storage": st.fixed_dictionaries({"root": st.sampled_from(["results", "a\x00b", "~/r", "file:x", "s3://b/p",
                                                                         "x" * 300, "r\x1b[1m"]) | st.text(max_size=12)}),
              "tracking": st.dictionaries(st.sampled_from(["uri", "experiment"]), values, max_size=2),
              "profiles": values, "profile": values, "zip": values, "search": values})


def _mutated(text: str, data) -> bytes:
    """The YAML text, sometimes with bytes cut, repeated or replaced."""
    raw = text.encode()
    how = data.draw(st.sampled_from(["as_is", "as_is", "cut", "byte", "splice"]))
    if how == "cut":
        return raw[: data.draw(st.integers(0, len(raw)))]
    if how == "byte" and raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]
    if how == "splice":
        return raw + data.draw(st.sampled_from([b"\n&a [*a, *a]\n", b"\nx: !!python/object/apply:os.system [id]\n",
                                                b"\n" + b"[" * 200, b"\nname: twice\n", b"\xff\xfe"]))
    return raw


@FUZZ
@given(sweep=sweeps, data=st.data())
def test_fuzz_sweep_files(sweep, data):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "s.yaml"
        path.write_bytes(_mutated(yaml.safe_dump(sweep, allow_unicode=True), data))
        code, _, err = cli(["plan", str(path)], tmp)
        assert_clean(code, err)
        assert files_under(tmp) == {path}, "plan wrote files"


VALID = "name: f\nexperiment: synthetic\nfixed: {num_probes: 2}\ngrid: {seed: [0, 1]}\nstorage: {root: results}\n"
override_keys = st.sampled_from(["fixed.num_probes", "grid.seed", "seeds", "storage.root", "tracking.uri", "name",
                                 "profile", "resources.num_cpus", "fixed", "grid", "zip.seed"]) | st.text(max_size=12)


def _nested(depth: int, open_: str, close: str) -> str:
    return open_ * depth + "1" + close * depth


override_values = st.one_of(
    st.text(max_size=20),
    st.builds(lambda v: json.dumps(v), values),
    st.builds(_nested, st.integers(0, 400), st.sampled_from(["[", "{a: "]), st.sampled_from(["]", "}"])).map(
        lambda s: s if s.count("[") == s.count("]") else s.replace("]", "}")),
    st.sampled_from(["${oc.env:HOME}", "a\x00b", "[1,", "{", "'", "1e309", str(2 ** 64), "/tmp/x\n"]))


@FUZZ
@example(overrides=["-="])  # found: argparse's usage text before its error, four lines
@given(overrides=st.lists(st.tuples(override_keys, override_values).map("=".join), max_size=3))
def test_fuzz_overrides(overrides):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "f.yaml"
        path.write_text(VALID)
        code, _, err = cli(["plan", str(path), *overrides], tmp)
        assert_clean(code, err)
        assert files_under(tmp) == {path}, "plan wrote files"


# --- safetensors headers and embedding tables ---------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 66, 2 ** 66) | st.floats(allow_nan=False)
                           | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=10)
DTYPE_CODES = ["F64", "F32", "F16", "BF16", "I64", "I32", "U8", "F8_E4M3", "", 3]
tensor_entries = st.fixed_dictionaries(
    {}, optional={"dtype": st.sampled_from(DTYPE_CODES) | json_values,
                  "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values | st.just([2 ** 40, 0]),
                  "data_offsets": st.lists(st.integers(-8, 400), min_size=2, max_size=2) | json_values,
                  "extra": json_values}) | json_values
headers = st.dictionaries(st.sampled_from(["embeddings", "mlp_in", "mlp_out", "__metadata__", "x"]) | st.text(max_size=5),
                          tensor_entries, max_size=3) | json_values


def _safetensors_bytes(header: bytes, data_size: int, length_lie: int | None) -> bytes:
    size = len(header) if length_lie is None else length_lie
    return struct.pack("<Q", size) + header + bytes(data_size)


@FUZZ
@given(header=headers, depth=st.integers(0, 3000) | st.just(0), data_size=st.integers(0, 300),
       lie=st.none() | st.integers(0, 2 ** 64 - 1), cut=st.none() | st.integers(0, 12))
def test_fuzz_safetensors_headers(header, depth, data_size, lie, cut):
    raw = ("[" * depth + "]" * depth).encode() if depth > 8 else json.dumps(header).encode()
    blob = _safetensors_bytes(raw, data_size, lie)
    blob = blob[:cut] if cut is not None else blob
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "t.safetensors"
        path.write_bytes(blob)
        code, _, err = cli(["embeddings", "show", str(path)], tmp)
        assert code in (0, 2) and "Traceback" not in err, err[-2000:]
        assert code == 0 or len(err.splitlines()) == 1 and err.startswith("factsweep: error: embeddings show: "), err
        for name in (None, "embeddings"):
            _loads_or_names_the_file(path, name=name)
        assert files_under(tmp) == {path}


def _loads_or_names_the_file(path: Path, **how):
    """A finite 2-D table, or a ValueError of one line naming the file (then None)."""
    try:
        table = load_table(path, **how)
    except ValueError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return None
    assert table.ndim == 2 and np.isfinite(table).all()
    return table


numeric = st.sampled_from(["<f8", "<f4", "<f2", "<i8", "|u1", "|b1", "<c8", "|O", "<U3", "<M8[s]"])


@FUZZ
@example(dtype="<f8", shape=[], cut=None, flip=(10, 0), fill=0.5)  # found: tokenize.TokenError from the header
@given(dtype=numeric, shape=st.lists(st.integers(0, 5), max_size=3), cut=st.none() | st.integers(0, 200),
       flip=st.none() | st.tuples(st.integers(0, 200), st.integers(0, 255)), fill=st.sampled_from([0.5, np.nan, np.inf]))
def test_fuzz_npy_tables(dtype, shape, cut, flip, fill):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.npy"
        array = np.full(shape, fill if np.dtype(dtype).kind in "fc" else 1, dtype=object if dtype == "|O" else None)
        with open(path, "wb") as fh:
            np.save(fh, array.astype(dtype) if dtype != "|O" else array, allow_pickle=True)
        raw = path.read_bytes()
        if flip is not None and flip[0] < len(raw):
            raw = raw[:flip[0]] + bytes([flip[1]]) + raw[flip[0] + 1:]
        path.write_bytes(raw[:cut] if cut is not None else raw)
        table = _loads_or_names_the_file(path)
        assert table is None or table.dtype.kind == "f"


cells = st.one_of(st.none(), st.floats(), st.integers(-2 ** 40, 2 ** 40), st.text(max_size=3),
                  st.lists(st.floats(allow_nan=True) | st.none(), max_size=3))


@FUZZ
@example(columns={"\n": [""]}, rows=1, column=None)  # found: a column name that broke the line
@given(columns=st.dictionaries(st.text(min_size=1, max_size=4), st.lists(cells, min_size=1, max_size=4), min_size=1,
                               max_size=3), rows=st.integers(1, 4), column=st.none() | st.text(max_size=3))
def test_fuzz_parquet_tables(columns, rows, column):
    data = {k: (v * rows)[:rows] for k, v in columns.items()}
    try:
        raw = pa.table({k: pa.array(v) for k, v in data.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        raw = pa.table({k: pa.array([str(x) for x in v]) for k, v in data.items()})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        pq.write_table(raw, path)
        _loads_or_names_the_file(path, column=column)


# --- Parquet fragments of the record ------------------------------------------------------------------

GOOD = [{"probe_id": f"p{i}", "cell_id": "c0", "status": "ok", "value": float(i)} for i in range(6)]
damages = st.one_of(
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    st.integers(0, 4000).map(lambda n: ("cut", n)),
    st.tuples(st.integers(0, 4000), st.integers(0, 255)).map(lambda t: ("flip", t)),
    st.fixed_dictionaries({}, optional={"probe_id": st.sampled_from(["x1", None, 7, 2.5, b"x"]),
                                        "recorded_at": st.sampled_from([1.0, "yesterday", None, 3, True]),
                                        "cell_id": st.sampled_from(["c9", None, 1]),
                                        "sweep": st.just("other"), "lease_epoch": st.sampled_from([1, "x", None, 2.5]),
                                        "status": st.sampled_from(["ok", "failed", 3])}).map(lambda r: ("rows", r)))


def _damage(folder: Path, good: bytes, index: int, damage) -> None:
    kind, what = damage
    path = folder / f"part-{index:020d}-fuzz.parquet"  # listed first: a tie of recorded_at goes to the intact copy
    if kind == "bytes":
        path.write_bytes(what)
    elif kind == "cut":
        path.write_bytes(good[: what % max(len(good), 1)])
    elif kind == "flip":
        at = what[0] % max(len(good), 1)
        path.write_bytes(good[:at] + bytes([what[1]]) + good[at + 1:])
    else:
        try:
            pq.write_table(pa.table({k: pa.array([v]) for k, v in what.items()}), path)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pq.write_table(pa.table({k: pa.array([str(v)]) for k, v in what.items()}), path)


@FUZZ
@given(damage=st.lists(damages, min_size=1, max_size=4))
@example(damage=[("flip", (644, 128))])  # found: a column name's bytes no longer UTF-8 (UnicodeDecodeError)
@example(damage=[("flip", (1363, 32))])  # found: a key of the pandas metadata renamed (KeyError on every load)
@example(damage=[("flip", (1233, 0))])  # found: the pandas metadata no longer JSON
def test_fuzz_damaged_fragments_lose_no_finished_row(damage):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        store = Store(root)
        store.append("probes", "s", GOOD[:3])
        store.append("probes", "s", GOOD[3:])
        folder = root / "probes" / "sweep=s"
        good = sorted(folder.glob("part-*.parquet"))[0].read_bytes()
        for index, one in enumerate(damage):
            _damage(folder, good, index, one)
        frame = Store(root).load("probes", "s")
        kept = frame[frame["probe_id"].isin([r["probe_id"] for r in GOOD])]
        assert sorted(kept["probe_id"]) == sorted(r["probe_id"] for r in GOOD), "a finished row was lost"
        assert kept.set_index("probe_id")["value"].to_dict() == {r["probe_id"]: r["value"] for r in GOOD}
        counted = Store(root).connect().execute("select count(*) from probes where probe_id like 'p%'").fetchone()[0]
        assert counted == len(GOOD)
        code, _, err = cli(["status", "s", "--root", str(root)], Path(tmp))
        assert_clean(code, err)
