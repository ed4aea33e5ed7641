"""Parquet, the system of record: one dataset per table, partitioned by sweep.

Layout: ``<root>/<table>/sweep=<name>/part-*.parquet``. Every write goes to a temporary file that
is then renamed into place, so a reader never sees half a file and a kill loses nothing that was
written. Rows carry their primary key; reads keep the newest row per key, which makes appends
idempotent and compaction safe to interrupt. A write that fails (folder not writable, not a folder,
disk full) removes its temporary file and raises ``StorageError``: one line naming the path.

Reads never fail because of what they find: a fragment that a compaction merges away while it is
being read makes the read list the folder again, and a fragment that cannot be decoded (truncated,
empty, corrupt) is moved to ``<root>/quarantine/`` with one warning line, so its probes simply run
again. SQL (``connect``) sees the same rows as ``load``: DuckDB gets Arrow tables read here, never a
path or a folder name inside SQL text, and folders whose names break the name rule are skipped.
"""
from __future__ import annotations

import difflib
import errno
import logging
import os
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.atomic import write_atomic
from orchestrator.identity import SCHEMA_VERSION
from orchestrator.names import is_name

KEYS = {"probes": "probe_id", "cells": "cell_id", "fits": "fit_id", "invocations": "invocation_id"}


class UnknownResults(LookupError):
    """A table or sweep with nothing recorded under the root: one line with a did-you-mean and the root."""

    def __init__(self, what: str, got: str, known: list[str], where: Path):
        close = difflib.get_close_matches(got, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"no {what} {got!r} recorded in {where.resolve()}{hint}; "
                         f"allowed: {', '.join(known) or 'none (nothing is recorded there: wrong folder?)'}")
QUARANTINE = "quarantine"
log = logging.getLogger("factsweep")


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
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(final, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp),
                         sync=True)
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
        names = sorted(p.name.split("=", 1)[1] for p in base.glob("sweep=*") if p.is_dir()) if base.exists() else []
        return [name for name in names if _named(base / f"sweep={name}", name)]

    def tables(self) -> list[str]:
        """Folders under the root that hold fragments, named by the name rule (the others are skipped)."""
        found = sorted(p for p in self.root.glob("*") if p.is_dir() and any(p.glob("sweep=*/part-*.parquet")))
        return [p.name for p in found if _named(p, p.name)]

    def _read_fragments(self, table: str, sweep: str, read) -> list:
        """``read(path)`` of every fragment of a sweep's table, as of one listing of the folder.

        A compaction writes its merged fragment before it deletes the old ones, so when a listed
        fragment has vanished, listing again finds its rows in the merged one: start over. A fragment
        that cannot be decoded is quarantined and left out.
        """
        for attempt in range(100):
            try:
                return [part for part in (self._read_one(path, read) for path in self.fragments(table, sweep))
                        if part is not None]
            except FileNotFoundError:
                time.sleep(0.01 * min(attempt, 10))
        raise StorageError(self._dir(table, sweep), OSError(errno.EAGAIN, "fragments kept vanishing while read"))

    def _read_one(self, path: Path, read):
        try:
            return read(path)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # the system refused the read (permissions, I/O): not a damaged file
            self.quarantine(path, e)
            return None

    def quarantine(self, path: Path, error: Exception) -> None:
        """Move an unreadable fragment to ``<root>/quarantine/<table>/sweep=<name>/`` (never delete it)."""
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"[:200]
        target = self.root / QUARANTINE / path.relative_to(self.root)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        except FileNotFoundError:
            return  # another reader moved it first
        except OSError as e:
            log.warning("results: cannot read fragment %s (%s) and cannot move it aside (%s); it is skipped, "
                        "and its probes run again", path, reason, os.strerror(e.errno) if e.errno else e)
            return
        log.warning("results: fragment %s cannot be read (%s); moved to %s, its probes run again", path, reason, target)

    def kinds(self, sweep: str) -> set[str]:
        """The experiment kinds recorded under a sweep's name (one, unless something went wrong)."""
        found = set()
        for table in ("probes", "cells"):
            for part in self._read_fragments(table, sweep, _experiments):
                found.update(part)
        return found

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
            parts = self._read_fragments(table, name, pd.read_parquet)
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
        """An in-memory DuckDB with one view per table (newest row per key), for SQL over results.

        Each view is an Arrow table read through ``_read_fragments``: no path reaches DuckDB (whose
        readers treat ``[`` and ``*`` in paths as globs) and no folder name reaches SQL text.
        """
        con = duckdb.connect()
        for table in self.tables():
            parts = [part.append_column("sweep", pa.array([name] * part.num_rows, pa.string()))
                     for name in self.sweeps(table) for part in self._read_fragments(table, name, pq.read_table)]
            if parts:
                con.register(table, _newest(_union(parts), KEYS.get(table)))
        return con


def _named(path: Path, name: str) -> bool:
    """True for a folder name that may become a sweep or view name; warn about the others."""
    if is_name(name):
        return True
    log.warning("results: skipping folder %r: %r is not a valid name (letters, digits, '_', '-', '.')", str(path), name)
    return False


def _experiments(path: Path) -> set[str]:
    with pq.ParquetFile(path) as file:
        if "experiment" not in file.schema_arrow.names:
            return set()
        return {v for v in file.read(columns=["experiment"]).column(0).to_pylist() if v is not None}


def _union(parts: list[pa.Table]) -> pa.Table:
    """Concatenate by column name, as DuckDB's ``union_by_name``: missing columns are null, numbers widen,
    and a column whose types cannot be merged becomes text."""
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set] = {}
        for part in parts:
            for column in part.schema:
                types.setdefault(column.name, set()).add(column.type)
        mixed = {name for name, kinds in types.items() if len(kinds - {pa.null()}) > 1}
        return pa.concat_tables([part.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in mixed else f
                                                      for f in part.schema])) for part in parts],
                                promote_options="permissive")


def _newest(data: pa.Table, key: str | None) -> pa.Table:
    """The newest row per (sweep, key) by ``recorded_at``, as ``Store.load`` keeps it."""
    if key not in data.column_names or "recorded_at" not in data.column_names:
        return data
    index = data.select(["sweep", key, "recorded_at"]).to_pandas()
    keep = index.sort_values("recorded_at", kind="stable").drop_duplicates(["sweep", key], keep="last").index
    return data.take(pa.array(sorted(keep), pa.int64()))


def load(table: str, sweep: str | None = None, root: str | Path = "results") -> pd.DataFrame:
    """pandas access to a results table: ``orchestrator.store.load('cells', sweep='quickstart')``.
    Raises ``UnknownResults`` for a table or sweep with nothing recorded under ``root``."""
    return Store(root).load(table, sweep)
