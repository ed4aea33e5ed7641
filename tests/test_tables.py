"""Loading user tables (.npy, hand-written .safetensors, Parquet) and drawing fact sets from them."""
import json
import re
import struct

import numpy as np
import pandas as pd
import pytest

from factmlp.embeddings import safetensors
from factmlp.embeddings.tables import load_table
from factmlp.factsets import assemble
from factmlp.geometries import make_factset

RNG = np.random.default_rng(0)
TABLE = RNG.standard_normal((12, 5))


def write_safetensors(path, tensors: dict, *, metadata=None, header_patch=None, truncate=0):
    """The format by hand: u64 LE header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, (code, array) in tensors.items():
        blob = array.tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = metadata
    if header_patch:
        header_patch(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the reference writer pads the header to 8 bytes
    data = struct.pack("<Q", len(raw)) + raw + b"".join(blobs)
    path.write_bytes(data[:len(data) - truncate])
    return path


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_npy_round_trip(tmp_path, dtype):
    table = (TABLE * 10).astype(dtype)
    np.save(tmp_path / "t.npy", table)
    loaded = load_table(tmp_path / "t.npy")
    np.testing.assert_array_equal(loaded, table)
    assert loaded.dtype == (np.float64 if dtype == np.int32 else dtype)


@pytest.mark.parametrize("code, dtype", [("F64", "<f8"), ("F32", "<f4"), ("F16", "<f2"), ("I64", "<i8")])
def test_safetensors_round_trip(tmp_path, code, dtype):
    table = (TABLE * 4).astype(dtype)
    path = write_safetensors(tmp_path / "t.safetensors", {"emb": (code, table)}, metadata={"format": "pt"})
    np.testing.assert_array_equal(load_table(path), table.astype(np.float64))


def test_safetensors_bfloat16_is_the_top_half_of_float32(tmp_path):
    table = np.array([[1.0, -2.5, 0.15625], [3.0e38, -1e-3, 0.0]], dtype=np.float32)
    bits = (table.view(np.uint32) >> 16).astype("<u2")  # truncate to bfloat16
    path = write_safetensors(tmp_path / "t.safetensors", {"emb": ("BF16", bits)})
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    loaded = load_table(path)
    np.testing.assert_array_equal(loaded, expected)
    assert loaded[0, 0] == 1.0 and loaded[0, 1] == -2.5 and abs(loaded[1, 1] + 1e-3) < 1e-5


def test_safetensors_picks_a_named_tensor_among_several(tmp_path):
    other = RNG.standard_normal((3, 2)).astype("<f4")
    path = write_safetensors(tmp_path / "t.safetensors", {"a": ("F32", other), "b": ("F64", TABLE)})
    np.testing.assert_array_equal(load_table(path, name="b"), TABLE)
    np.testing.assert_array_equal(load_table(path, name="a"), other)
    with pytest.raises(ValueError, match=r"t\.safetensors: holds 2 tensors \(a, b\); pass name="):
        load_table(path)
    with pytest.raises(ValueError, match="no tensor 'c'"):
        load_table(path, name="c")


@pytest.mark.parametrize("patch, truncate, match", [
    (lambda h: h["emb"].update(dtype="F8_E4M3"), 0, "unsupported dtype F8_E4M3"),
    (lambda h: h["emb"].update(shape=[13, 5]), 0, "data_offsets .* do not match shape"),
    (None, 8, "data_offsets .* do not match shape"),  # file cut short
    (lambda h: h["emb"].pop("shape"), 0, "lacks dtype, shape or data_offsets"),
])
def test_safetensors_errors(tmp_path, patch, truncate, match):
    path = write_safetensors(tmp_path / "bad.safetensors", {"emb": ("F64", TABLE)}, header_patch=patch,
                             truncate=truncate)
    with pytest.raises(ValueError, match=match):
        load_table(path)


def test_safetensors_with_a_broken_header(tmp_path):
    (tmp_path / "len.safetensors").write_bytes(struct.pack("<Q", 10_000) + b"{}")
    with pytest.raises(ValueError, match="header length 10000 exceeds the file"):
        load_table(tmp_path / "len.safetensors")
    (tmp_path / "json.safetensors").write_bytes(struct.pack("<Q", 4) + b"{no ")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_table(tmp_path / "json.safetensors")


def test_parquet_with_one_list_column(tmp_path):
    pd.DataFrame({"embedding": list(TABLE)}).to_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(load_table(tmp_path / "t.parquet"), TABLE)


def test_parquet_with_numeric_columns(tmp_path):
    pd.DataFrame(TABLE, columns=[f"x{i}" for i in range(5)]).to_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(load_table(tmp_path / "t.parquet"), TABLE)


def test_parquet_list_column_by_name_among_others(tmp_path):
    frame = pd.DataFrame({"token": [f"w{i}" for i in range(12)], "vec": list(TABLE)})
    frame.to_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(load_table(tmp_path / "t.parquet", column="vec"), TABLE)
    with pytest.raises(ValueError, match="one list column or all numeric; non-numeric: token, vec"):
        load_table(tmp_path / "t.parquet")


def test_parquet_ragged_rows_are_rejected(tmp_path):
    pd.DataFrame({"vec": [np.ones(3), np.ones(4)]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: list column 'vec' has rows of different lengths \[3, 4\]"):
        load_table(tmp_path / "t.parquet")


def test_too_few_rows_names_the_file_and_the_numbers(tmp_path):
    np.save(tmp_path / "table.npy", np.ones((100, 4)))
    with pytest.raises(ValueError) as err:
        load_table(tmp_path / "table.npy", num_facts=256)
    message = str(err.value)
    assert message.endswith("table.npy: 100 rows, but num_facts=256 needs at least 256")
    assert "\n" not in message
    assert load_table(tmp_path / "table.npy", num_facts=100).shape == (100, 4)


@pytest.mark.parametrize("table, match", [
    (np.ones(7), r"expected a 2-D table \(rows × d\), got shape \(7,\)"),
    (np.ones((2, 3, 4)), "expected a 2-D table"),
    (np.array([[1.0, np.nan], [np.inf, 0.0], [1.0, 2.0]]), r"2 non-finite values \(NaN or inf\), the first in row 0"),
    (np.array([[True, False]]), "expected a numeric table, got dtype bool"),
])
def test_bad_npy_tables(tmp_path, table, match):
    np.save(tmp_path / "x.npy", table)
    with pytest.raises(ValueError, match=match):
        load_table(tmp_path / "x.npy")


def test_non_finite_values_in_safetensors_and_parquet_are_rejected(tmp_path):
    bad = TABLE.copy()
    bad[3, 1] = np.nan
    write_safetensors(tmp_path / "a.safetensors", {"emb": ("F64", bad)})
    pd.DataFrame(bad).rename(columns=str).to_parquet(tmp_path / "a.parquet")
    for name in ("a.safetensors", "a.parquet"):
        with pytest.raises(ValueError, match=f"{name}: 1 non-finite values .* row 3"):
            load_table(tmp_path / name)


def test_unknown_format_and_unreadable_files(tmp_path):
    (tmp_path / "t.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"t\.csv: unknown table format '\.csv'"):
        load_table(tmp_path / "t.csv")
    (tmp_path / "t.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"t\.npy: not a readable \.npy array"):
        load_table(tmp_path / "t.npy")
    (tmp_path / "t.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: not a readable Parquet file"):
        load_table(tmp_path / "t.parquet")


def test_written_safetensors_read_back_with_their_metadata(tmp_path):
    arrays = {"inputs": TABLE, "outputs": TABLE.astype(np.float32), "ids": np.arange(12)[:, None]}
    path = safetensors.write(tmp_path / "sub" / "c.safetensors", arrays, {"kind": "mlp_io", "rows": 12})
    for name, array in arrays.items():
        np.testing.assert_array_equal(load_table(path, name=name), array)
    assert safetensors.metadata(str(path)) == {"kind": "mlp_io", "rows": "12"}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically


# ---- fact sets from tables (geometries llm_*, table_path) and the shared assemble step


def test_assemble_normalises_whitens_and_draws_the_map_from_its_own_stream():
    fs = assemble(TABLE, TABLE * 2, 7, normalize=True, whiten_values=True)
    np.testing.assert_allclose(np.linalg.norm(fs.keys, axis=1), 1.0)
    centred = fs.values - fs.values.mean(axis=0)
    np.testing.assert_allclose(centred.T @ centred / 12, np.eye(5), atol=1e-9)
    np.testing.assert_array_equal(fs.mapping, assemble(TABLE[::-1], TABLE, 7).mapping)  # rows never move the map
    assert not np.array_equal(fs.mapping, assemble(TABLE, TABLE, 7, map_stream="rows_map").mapping)
    np.testing.assert_array_equal(assemble(TABLE, TABLE, 7, mapping="identity").mapping, np.arange(12))
    zero = TABLE.copy()
    zero[4] = 0
    with pytest.raises(ValueError, match="keys: row 4 is zero"):
        assemble(zero, TABLE, 0, normalize=True)
    with pytest.raises(ValueError, match="mapping: got 'shuffle'"):
        assemble(TABLE, TABLE, 0, mapping="shuffle")


def test_a_table_fact_set_is_a_seeded_sample_that_keeps_pairs(tmp_path):
    values = TABLE * 2 + 1  # row i of the outputs pairs with row i of the inputs
    path = safetensors.write(tmp_path / "io.safetensors", {"inputs": TABLE, "outputs": values}, {"kind": "mlp_io"})
    draw = lambda seed, **kw: make_factset("llm_mlp_io", 5, 6, seed, table_path=str(path), llm_normalize=False, **kw)
    a, c = draw(3), draw(4)
    np.testing.assert_array_equal(a.keys, draw(3).keys)
    assert not np.array_equal(a.keys, c.keys)
    rows = [int(np.flatnonzero((TABLE == k).all(axis=1))[0]) for k in a.keys]
    assert len(set(rows)) == 6 and rows == sorted(rows)
    np.testing.assert_array_equal(a.values, values[rows])
    assert sorted(a.mapping) == list(range(6)) and draw(3, mapping="identity").mapping.tolist() == list(range(6))
    unit = make_factset("llm_mlp_io", 5, 6, 3, table_path=str(path))
    np.testing.assert_allclose(unit.keys * np.linalg.norm(a.keys, axis=1, keepdims=True), a.keys, atol=1e-12)


def test_untied_token_embeddings_draw_keys_and_values_from_disjoint_rows(tmp_path):
    np.save(tmp_path / "tokens.npy", TABLE.astype(np.float32))
    fs = make_factset("llm_token_embeddings", 5, 6, 0, table_path=str(tmp_path / "tokens.npy"), tied=False)
    assert fs.keys.dtype == np.float64
    assert not (np.abs(fs.keys @ fs.values.T) > 1 - 1e-6).any()
    with pytest.raises(ValueError, match="num_facts: .* has 12 rows, too few for num_facts=7 with tied=false"):
        make_factset("llm_token_embeddings", 5, 7, 0, table_path=str(tmp_path / "tokens.npy"), tied=False)


CRAFTED = {  # header bytes -> what the one line must say (issue 31: each was a traceback or passed unseen)
    "deep_json": (b"[" * 100_000 + b"]" * 100_000, "JSON nested 100000 levels deep; allowed: at most 8"),
    "null_shape": (b'{"a": {"dtype": "F32", "shape": null, "data_offsets": [0, 0]}}', "tensor 'a' has shape None"),
    "string_shape": (b'{"a": {"dtype": "F32", "shape": ["x", 2], "data_offsets": [0, 8]}}', "has shape ['x', 2]"),
    "bool_offsets": (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [false, true]}}', "has data_offsets"),
    "offsets_past_the_end": (b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
                             "do not match shape [4] of F32 within a 0-byte data buffer"),
    "metadata_not_strings": (b'{"__metadata__": {"kind": [1]}}', "__metadata__ is not a mapping of strings"),
    "huge_dimension": (b'{"a": {"dtype": "F32", "shape": [1099511627776, 0], "data_offsets": [0, 0]}}',
                       "integers in [0, 2^40)"),
}


@pytest.mark.parametrize("case", list(CRAFTED), ids=str)
def test_crafted_safetensors_headers_are_one_line(case, tmp_path, capsys):
    from orchestrator.cli import main
    header, expect = CRAFTED[case]
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    assert main(["embeddings", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"factsweep: error: embeddings show: FILE: {path}: "), err
    assert expect in err and "allowed:" in err
    with pytest.raises(ValueError, match=re.escape(expect)):
        load_table(path)
