"""Parquet, the system of record: one dataset per table, partitioned by sweep.

Layout: ``<root>/<table>/sweep=<name>/part-*.parquet``. Every write goes to a temporary file that
is then renamed into place, so a reader never sees half a file and a kill loses nothing that was
written. Rows carry their primary key; reads keep the newest row per key, which makes appends
idempotent and compaction safe to interrupt. A write that fails (folder not writable, not a folder,
disk full) removes its temporary file and raises ``StorageError``: one line naming the path.
"""
from __future__ import annotations

import difflib
import errno
import os
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.identity import SCHEMA_VERSION

KEYS = {"probes": "probe_id", "cells": "cell_id", "fits": "fit_id", "invocations": "invocation_id"}


class UnknownResults(LookupError):
    """A table or sweep with nothing recorded under the root: one line with a did-you-mean and the root."""

    def __init__(self, what: str, got: str, known: list[str], where: Path):
        close = difflib.get_close_matches(got, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"no {what} {got!r} recorded in {where.resolve()}{hint}; "
                         f"allowed: {', '.join(known) or 'none (nothing is recorded there: wrong folder?)'}")


class StorageError(Exception):
    """The results folder cannot be written; ``str()`` is one line naming the path, the problem and a way out."""

    def __init__(self, path: str | Path, error: OSError):
        reason = os.strerror(error.errno) if error.errno else (str(error).splitlines() or [type(error).__name__])[0]
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "free space or set storage.root to another folder"
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "make it writable or set storage.root to another folder"
        else:
            hint = "set storage.root to a writable folder"
        super().__init__(f"results: cannot write {path}: {reason}; {hint}")
        self.path, self.errno = Path(path), error.errno


def storage_error(path: str | Path, error: OSError) -> StorageError:
    """``error`` as a StorageError, naming the path the system call reported when it names one."""
    return StorageError(error.filename or path, error)


class Store:
    """Append-only Parquet tables under ``root`` with atomic writes and compaction."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, table: str, sweep: str) -> Path:
        return self.root / table / f"sweep={sweep}"

    def append(self, table: str, sweep: str, rows: list[dict]) -> Path | None:
        """Write ``rows`` as one new fragment (temporary file, then an atomic rename)."""
        if not rows:
            return None
        now = time.time()
        frame = pd.DataFrame([{"schema_version": SCHEMA_VERSION, "recorded_at": now, **r} for r in rows])
        return self._write(self._dir(table, sweep), frame, f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet")

    @staticmethod
    def _write(folder: Path, frame: pd.DataFrame, name: str) -> Path:
        final = folder / name
        tmp = folder / f".{name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as e:  # not writable, not a folder, disk full: nothing half-written stays behind
            raise storage_error(folder, e) from e
        return final

    def check_writable(self, sweep: str) -> None:
        """Fail fast, before any work: create the sweep's folders and write, sync and delete a 4 KiB file
        in each. Raises StorageError when the root is not writable, not a folder, or full."""
        for table in ("probes", "cells"):
            folder = self._dir(table, sweep)
            check = folder / f".part-check-{uuid.uuid4().hex[:8]}.tmp"  # removed by remove_temporary if killed
            try:
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    with open(check, "wb") as fh:
                        fh.write(bytes(4096))
                        fh.flush()
                        os.fsync(fh.fileno())
                finally:
                    check.unlink(missing_ok=True)
            except OSError as e:
                raise storage_error(folder, e) from e

    def remove_temporary(self, sweep: str) -> int:
        """Delete temporary files a killed writer left behind (never visible to readers)."""
        stale = list(self.root.glob(f"*/sweep={sweep}/.part-*.tmp"))
        for path in stale:
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                raise storage_error(path, e) from e
        return len(stale)

    def fragments(self, table: str, sweep: str) -> list[Path]:
        return sorted(self._dir(table, sweep).glob("part-*.parquet"))

    def sweeps(self, table: str) -> list[str]:
        base = self.root / table
        return sorted(p.name.split("=", 1)[1] for p in base.glob("sweep=*") if p.is_dir()) if base.exists() else []

    def tables(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*") if p.is_dir() and any(p.glob("sweep=*")))

    def load(self, table: str, sweep: str | None = None, *, missing_ok: bool = False) -> pd.DataFrame:
        """All current rows of ``table`` (one per key, the newest), with a ``sweep`` column.

        A table or sweep with nothing recorded raises ``UnknownResults`` (a typo or the wrong working
        directory must not look like an empty result), unless ``missing_ok``: then an empty frame.
        """
        if not missing_ok:
            if table not in self.tables():
                raise UnknownResults("table", table, self.tables(), self.root)
            if sweep and sweep not in self.sweeps(table):
                raise UnknownResults("sweep", sweep, self.sweeps(table), self.root / table)
        frames = []
        for name in [sweep] if sweep else self.sweeps(table):
            parts = [pd.read_parquet(p) for p in self.fragments(table, name)]
            parts = [p for p in parts if len(p)]
            if parts:
                frames.append(pd.concat(parts, ignore_index=True).assign(sweep=name))
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        key = KEYS.get(table)
        if key in frame:
            frame = frame.sort_values("recorded_at", kind="stable").drop_duplicates(["sweep", key], keep="last")
        return frame.reset_index(drop=True)

    def compact(self, table: str, sweep: str) -> None:
        """Merge a sweep's fragments into one; a kill part-way leaves duplicates that reads drop."""
        parts = self.fragments(table, sweep)
        if len(parts) < 2:
            return
        frame = self.load(table, sweep, missing_ok=True).drop(columns="sweep")
        self._write(self._dir(table, sweep), frame, f"part-{time.time_ns():020d}-compact.parquet")
        for p in parts:
            try:
                p.unlink(missing_ok=True)
            except OSError as e:
                raise storage_error(p, e) from e

    def set_aside(self, table: str, sweep: str, cell_ids: set[str]) -> int:
        """Move the rows of ``cell_ids`` out of a sweep's table into ``<root>/set_aside/`` (never deleted).

        Safe to interrupt and to repeat: the rows are first copied aside, then the rest is written as
        one new fragment, then the old fragments are removed; until the last removal the moved rows
        still show (newest row per key), and running it again finishes the move.
        """
        frame = self.load(table, sweep, missing_ok=True)
        moving = frame["cell_id"].isin(cell_ids) if len(frame) else pd.Series(dtype=bool)
        if not moving.any():
            return 0
        parts = self.fragments(table, sweep)
        stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._write(self.root / "set_aside" / table / f"sweep={sweep}", frame[moving].drop(columns="sweep"),
                    f"part-{stamp}.parquet")
        if (~moving).any():
            self._write(self._dir(table, sweep), frame[~moving].drop(columns="sweep"), f"part-{stamp}-compact.parquet")
        for p in parts:
            try:
                p.unlink(missing_ok=True)
            except OSError as e:
                raise storage_error(p, e) from e
        return int(moving.sum())

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with one view per table (newest row per key), for SQL over results."""
        con = duckdb.connect()
        for table in sorted(p.name for p in self.root.glob("*") if p.is_dir() and any(p.glob("sweep=*/part-*.parquet"))):
            glob = str(self.root / table / "sweep=*" / "part-*.parquet").replace("'", "''")
            source = f"read_parquet('{glob}', hive_partitioning=true, union_by_name=true)"
            key = KEYS.get(table)
            dedupe = f" QUALIFY row_number() OVER (PARTITION BY sweep, {key} ORDER BY recorded_at DESC) = 1" if key else ""
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}{dedupe}')
        return con


def load(table: str, sweep: str | None = None, root: str | Path = "results") -> pd.DataFrame:
    """pandas access to a results table: ``orchestrator.store.load('cells', sweep='quickstart')``.
    Raises ``UnknownResults`` for a table or sweep with nothing recorded under ``root``."""
    return Store(root).load(table, sweep)
