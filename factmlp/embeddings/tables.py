"""Embedding tables from files: ``load_table`` reads one 2-D table, each row a vector, from ``.npy``,
``.safetensors`` or Parquet, and rejects anything that is not a finite 2-D numeric table with a
one-line ``BadFile`` (a ValueError) naming the file. No pickle: numpy's loader runs with allow_pickle=False.
"""
from __future__ import annotations

import os
import tokenize

import numpy as np

from orchestrator.badfile import BadFile

from factmlp.embeddings import safetensors


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
        table = load_npy(label)
    elif suffix == ".safetensors":
        table = safetensors.read_tensor(label, name)
    elif suffix in (".parquet", ".pq"):
        table = _load_parquet(label, column)
    else:
        raise BadFile(label, f"unknown table format {suffix!r}; allowed: .npy, .safetensors, .parquet")
    return _validate(table, label, num_facts)


def _validate(table: np.ndarray, label: str, num_facts: int | None) -> np.ndarray:
    if table.ndim != 2:
        raise BadFile(label, f"expected a 2-D table (rows × d), got shape {table.shape}")
    if table.dtype.kind not in "fiu":
        raise BadFile(label, f"expected a numeric table, got dtype {table.dtype}")
    if table.dtype.kind in "iu":
        table = table.astype(np.float64)
    elif table.dtype.itemsize < 4:
        table = table.astype(np.float32)
    if table.shape[1] < 1:
        raise BadFile(label, f"the table has no columns (shape {table.shape})")
    bad = ~np.isfinite(table)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise BadFile(label, f"{int(bad.sum())} non-finite values (NaN or inf), the first in row {row}")
    if num_facts is not None and len(table) < num_facts:
        raise BadFile(label, f"{len(table)} rows, but num_facts={num_facts} needs at least {num_facts}")
    return table


def load_npy(label: str) -> np.ndarray:
    """A .npy array, memory-mapped, or BadFile. numpy parses the header's Python literal with ``ast`` and
    ``tokenize``: a damaged header raises SyntaxError or tokenize.TokenError as well as ValueError."""
    try:
        return np.load(label, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, tokenize.TokenError, MemoryError) as err:
        raise BadFile(label, f"not a readable .npy array ({type(err).__name__}: {err})") from None


def _load_parquet(label: str, column: str | None) -> np.ndarray:
    import pandas  # lazy: only Parquet needs it (and its engine)

    try:
        frame = pandas.read_parquet(label)
    except Exception as err:  # the engine's own error types vary
        raise BadFile(label, f"not a readable Parquet file ({type(err).__name__}: {err})") from None
    if column is None and len(frame.columns) == 1 and frame.dtypes.iloc[0] == object:
        column = frame.columns[0]
    if column is not None:
        if column not in frame.columns:
            raise BadFile(label, f"no column {column!r}; it has {', '.join(map(_shown, frame.columns))}")
        cells = frame[column].tolist()
        lengths = {np.size(c) if c is not None else 0 for c in cells}
        if len(lengths) > 1:
            raise BadFile(label, f"list column {column!r} has rows of different lengths {sorted(lengths)[:5]}")
        try:
            return np.asarray([np.asarray(c, dtype=np.float64) for c in cells]).reshape(len(cells), -1)
        except (TypeError, ValueError):
            raise BadFile(label, f"list column {column!r} holds non-numeric entries") from None
    bad = [_shown(c) for c, t in frame.dtypes.items() if t.kind not in "fiu"]
    if bad:
        raise BadFile(label, f"columns must be one list column or all numeric; non-numeric: {', '.join(bad)}")
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)  # missing entries become NaN, rejected later


def _shown(name) -> str:
    """A column name as the file spells it, quoted when it holds a newline or other control character."""
    return str(name) if str(name).isprintable() and str(name) else repr(name)
