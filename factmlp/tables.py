"""User-supplied embedding tables (e.g. a real LM's token embeddings) as fact sets.

``load_table`` reads one 2-D table, each row a vector, from ``.npy``, ``.safetensors`` (parsed here:
no safetensors dependency) or Parquet, and rejects anything that is not a finite 2-D numeric table
with a one-line ValueError naming the file. ``factset_from_tables`` turns loaded key/value tables
into a ``FactSet`` the same way ``make_factset`` does for synthetic ones.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from factmlp.factsets import MAPPINGS, FactSet

SAMPLES = ("first", "random")

# safetensors dtype codes → little-endian numpy dtypes (BF16 is widened by hand, see _bf16).
_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}
_MAX_HEADER = 100 * 1024 * 1024


def load_table(path: str | os.PathLike, *, num_facts: int | None = None, name: str | None = None,
               column: str | None = None) -> np.ndarray:
    """A finite 2-D table (rows × d) from .npy, .safetensors or .parquet.

    name: which tensor of a .safetensors file (needed when it holds several).
    column: which list column of a Parquet file; default: the only column if it holds lists,
    else all columns, which must then be numeric (each row one vector).
    num_facts: when given, the table must have at least this many rows.
    Float tables keep their float dtype (16-bit floats widen to float32); integers become float64.
    """
    label = os.fspath(path)
    suffix = os.path.splitext(label)[1].lower()
    if suffix == ".npy":
        table = _load_npy(label)
    elif suffix == ".safetensors":
        table = _load_safetensors(label, name)
    elif suffix in (".parquet", ".pq"):
        table = _load_parquet(label, column)
    else:
        raise ValueError(f"{label}: unknown table format {suffix!r}; allowed: .npy, .safetensors, .parquet")
    return _validate(table, label, num_facts)


def _validate(table: np.ndarray, label: str, num_facts: int | None) -> np.ndarray:
    if table.ndim != 2:
        raise ValueError(f"{label}: expected a 2-D table (rows × d), got shape {table.shape}")
    if table.dtype.kind not in "fiu":
        raise ValueError(f"{label}: expected a numeric table, got dtype {table.dtype}")
    if table.dtype.kind in "iu":
        table = table.astype(np.float64)
    elif table.dtype.itemsize < 4:
        table = table.astype(np.float32)
    if table.shape[1] < 1:
        raise ValueError(f"{label}: the table has no columns (shape {table.shape})")
    bad = ~np.isfinite(table)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"{label}: {int(bad.sum())} non-finite values (NaN or inf), the first in row {row}")
    if num_facts is not None and len(table) < num_facts:
        raise ValueError(f"{label}: {len(table)} rows, but num_facts={num_facts} needs at least {num_facts}")
    return table


def _load_npy(label: str) -> np.ndarray:
    try:
        return np.load(label, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{label}: not a readable .npy array ({err})") from None


def _load_safetensors(label: str, name: str | None) -> np.ndarray:
    """Format: u64 little-endian header length N, N bytes of JSON, then the raw data buffer.

    The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
    the data buffer), plus an optional "__metadata__" entry.
    """
    size = os.path.getsize(label)
    with open(label, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ValueError(f"{label}: too short for a safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(size - 8, _MAX_HEADER):
            raise ValueError(f"{label}: safetensors header length {header_len} exceeds the file ({size} bytes)")
        try:
            header = json.loads(fh.read(header_len).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{label}: safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{label}: safetensors header is not a JSON object")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if name is None:
        if len(tensors) != 1:
            raise ValueError(f"{label}: holds {len(tensors)} tensors ({', '.join(sorted(tensors)) or 'none'}); "
                             "pass name= to pick one")
        name = next(iter(tensors))
    if name not in tensors:
        raise ValueError(f"{label}: no tensor {name!r}; it holds {', '.join(sorted(tensors)) or 'none'}")
    info = tensors[name]
    try:
        code, shape, (begin, end) = info["dtype"], [int(n) for n in info["shape"]], info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{label}: tensor {name!r} lacks dtype, shape or data_offsets") from None
    if code not in _SAFETENSORS_DTYPES:
        raise ValueError(f"{label}: tensor {name!r} has unsupported dtype {code}; "
                         f"allowed: {', '.join(_SAFETENSORS_DTYPES)}")
    dtype = np.dtype(_SAFETENSORS_DTYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    data_start = 8 + header_len
    if not 0 <= begin <= end or end - begin != count * dtype.itemsize or data_start + end > size:
        raise ValueError(f"{label}: tensor {name!r} data_offsets [{begin}, {end}] do not match shape {shape} "
                         f"of {code} within a {size - data_start}-byte data buffer")
    flat = np.fromfile(label, dtype=dtype, count=count, offset=data_start + begin)
    if code == "BF16":
        flat = _bf16(flat)
    return flat.reshape(shape)


def _bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift the 16 bits up and reinterpret."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _load_parquet(label: str, column: str | None) -> np.ndarray:
    import pandas  # lazy: only Parquet needs it (and its engine)

    try:
        frame = pandas.read_parquet(label)
    except Exception as err:  # the engine's own error types vary
        raise ValueError(f"{label}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    if column is None and len(frame.columns) == 1 and frame.dtypes.iloc[0] == object:
        column = frame.columns[0]
    if column is not None:
        if column not in frame.columns:
            raise ValueError(f"{label}: no column {column!r}; it has {', '.join(map(str, frame.columns))}")
        cells = frame[column].tolist()
        lengths = {np.size(c) if c is not None else 0 for c in cells}
        if len(lengths) > 1:
            raise ValueError(f"{label}: list column {column!r} has rows of different lengths {sorted(lengths)[:5]}")
        try:
            return np.asarray([np.asarray(c, dtype=np.float64) for c in cells]).reshape(len(cells), -1)
        except (TypeError, ValueError):
            raise ValueError(f"{label}: list column {column!r} holds non-numeric entries") from None
    bad = [str(c) for c, t in frame.dtypes.items() if t.kind not in "fiu"]
    if bad:
        raise ValueError(f"{label}: columns must be one list column or all numeric; non-numeric: {', '.join(bad)}")
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)  # missing entries become NaN, rejected later


def factset_from_tables(keys: np.ndarray, values: np.ndarray | None = None, num_facts: int | None = None, *,
                        sample: str = "first", seed: int = 0, mapping: str = "permutation",
                        normalize: bool = False) -> FactSet:
    """A fact set with M = F from loaded tables, in float64.

    values None: tied (values are the key rows). Otherwise the same row indices are taken from
    both tables, so paired tables (an MLP's inputs and outputs at one layer) stay paired.
    sample: 'first' takes rows 0..F-1; 'random' a seeded sample of F distinct rows (sorted).
    mapping: 'permutation' (seeded) or 'identity'. normalize: scale every row to unit norm.
    """
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}; allowed: {', '.join(SAMPLES)}")
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; allowed: {', '.join(MAPPINGS)}")
    tables = {"keys": keys} if values is None else {"keys": keys, "values": values}
    for role, table in tables.items():
        if np.ndim(table) != 2:
            raise ValueError(f"{role}: expected a 2-D table, got shape {np.shape(table)}")
    if values is not None and keys.shape[1] != values.shape[1]:
        raise ValueError(f"keys have d={keys.shape[1]} but values d={values.shape[1]}; they must match")
    rows = min(len(t) for t in tables.values())
    num_facts = rows if num_facts is None else num_facts
    if not 1 <= num_facts <= rows:
        raise ValueError(f"num_facts={num_facts} must be between 1 and the {rows} rows available")
    # Separate streams, as in make_factset: the sample never changes with the map, nor vice versa.
    sample_rng, map_rng = (np.random.default_rng([seed, i]) for i in (10, 11))
    index = np.arange(num_facts) if sample == "first" else np.sort(sample_rng.choice(rows, num_facts, replace=False))
    picked = {role: np.asarray(t[index], dtype=np.float64) for role, t in tables.items()}
    if normalize:
        for role, t in picked.items():
            norms = np.linalg.norm(t, axis=1, keepdims=True)
            if (norms == 0).any():
                raise ValueError(f"{role}: row {int(np.argmin(norms))} is zero and cannot be normalised")
            picked[role] = t / norms
    f = map_rng.permutation(num_facts) if mapping == "permutation" else np.arange(num_facts)
    return FactSet(keys=picked["keys"], values=picked.get("values", picked["keys"]), mapping=f)
