"""Parquet, the system of record: one dataset per table, partitioned by sweep.

Layout: ``<root>/<table>/sweep=<name>/part-*.parquet``, where the root is a folder or an object-store
URI (``orchestrator.location``). Every write is whole or nothing (a temporary file renamed into place,
or one PUT), so a reader never sees half a file and a kill loses nothing that was written. Rows carry
their primary key and the epoch of the lease their driver held (``orchestrator.lease``); reads keep the
newest row per key (highest epoch, then latest ``recorded_at``: clocks of different hosts never
decide between two drivers), which makes appends idempotent and compaction safe to interrupt. A write that fails (folder not writable, not a folder,
disk full) removes its temporary file and raises ``StorageError``: one line naming the path.

Reads never fail because of what they find: a fragment that a compaction merges away while it is
being read makes the read list the folder again, and a fragment that cannot be decoded (truncated,
empty, corrupt) is moved to ``<root>/quarantine/`` with one warning line, so its probes simply run
again. An I/O error that says nothing about the data (network, server down) never quarantines: it is
retried, then raised as one ``StorageError`` line that stops the sweep. SQL (``connect``) sees the same rows as ``load``: DuckDB gets Arrow tables read here, never a
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

from orchestrator.badfile import BadFile
from orchestrator.errors import Unavailable
from orchestrator.identity import SCHEMA_VERSION
from orchestrator.location import open_root, transient
from orchestrator.names import is_name
from orchestrator.schema import VIEWS, as_timestamp, upgrade

KEYS = {"probes": "probe_id", "cells": "cell_id", "fits": "fit_id", "invocations": "invocation_id"}
EPOCH = "lease_epoch"  # the lease (or lock) epoch of the driver that wrote a row: newer drivers win


class UnknownResults(LookupError):
    """A table or sweep with nothing recorded under the root: one line with a did-you-mean and the root."""

    def __init__(self, what: str, got: str, known: list[str], where):
        close = difflib.get_close_matches(got, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"no {what} {got!r} recorded in {where.resolve() if isinstance(where, Path) else where}{hint}; "
                         f"allowed: {', '.join(known) or 'none (nothing is recorded there: wrong folder?)'}")
QUARANTINE = "quarantine"
COMPACT_EVERY = 128  # fragments of one table a compacting store lets pile up (a read opens each: 5,000 took 101 s)
FETCHERS = 16  # concurrent requests to an object store when reading or deleting many fragments
log = logging.getLogger("factsweep")
_WARNED: set[str] = set()  # fragments whose odd columns were already reported by this process


class StorageError(Unavailable):
    """The results folder cannot be written (or an object store not reached); ``str()`` is one line naming
    the path, the problem and a way out."""

    def __init__(self, path: str | Path, error: OSError):
        reason = os.strerror(error.errno) if error.errno else (str(error).splitlines() or [type(error).__name__])[0]
        verb = "write"
        if transient(error) and "://" in str(path):
            reason, verb = reason[:240], "reach"
            hint = "the object store did not answer (retried); check it is up and reachable, then run again"
        elif error.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "free space or set storage.root to another folder"
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "make it writable or set storage.root to another folder"
        else:
            hint = "set storage.root to a writable folder"
        super().__init__(f"results: cannot {verb} {path}: {reason}; {hint}")
        self.path, self.errno = (path if "://" in str(path) else Path(path)), error.errno


def storage_error(path: str | Path, error: OSError) -> StorageError:
    """``error`` as a StorageError, naming the path the system call reported when it names one."""
    return StorageError(error.filename if error.filename and "://" not in str(path) else path, error)


class Store:
    """Append-only Parquet tables under ``root`` (a folder or an object-store URI) with whole-or-nothing
    writes and compaction. ``epoch``: the lease epoch stamped on every row written (None: none stamped);
    ``guard``: the lease, checked before each write so a driver that lost it stops writing;
    ``compacting``: merge a table's fragments whenever COMPACT_EVERY have piled up (set by the sweep's
    only driver, so a long or killed run never leaves thousands of fragments to every later read)."""

    def __init__(self, root, *, epoch: int | None = None, guard=None, compacting: bool = False):
        self.location = open_root(root)
        self.root = self.location.path if not self.location.remote else self.location.uri
        self.epoch, self.guard, self.compacting = epoch, guard, compacting
        self._piled: dict[tuple[str, str], int] = {}  # fragments per (table, sweep), listed once, then counted

    def _dir(self, table: str, sweep: str) -> str:
        return f"{table}/sweep={sweep}"

    def where(self, key: str = ""):
        """A key as the user names it: a path under a folder root, a URI under an object store."""
        return self.location.error_path(key)

    def append(self, table: str, sweep: str, rows: list[dict]):
        """Write ``rows`` as one new fragment (whole or nothing)."""
        if not rows:
            return None
        now = pd.Timestamp.now(tz="UTC")
        stamp = {EPOCH: self.epoch} if self.epoch is not None else {}
        frame = pd.DataFrame([{"schema_version": SCHEMA_VERSION, "recorded_at": now, **r, **stamp} for r in rows])
        # now, or a caller's own (epoch seconds, ISO text): one UTC timestamp type, as old fragments are read
        frame["recorded_at"] = as_timestamp(pa.chunked_array([pa.array(frame["recorded_at"])])).to_pandas()
        written = self._write(self._dir(table, sweep), frame, f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet")
        if self.compacting:
            self._compact_when_piled(table, sweep)
        return written  # (merged away, rows and all, when that append triggered a compaction)

    def _compact_when_piled(self, table: str, sweep: str) -> None:
        piled = self._piled.get((table, sweep))
        piled = len(self._keys(table, sweep)) if piled is None else piled + 1
        if piled >= COMPACT_EVERY:
            self.compact(table, sweep)
            piled = 1
        self._piled[(table, sweep)] = piled

    def _write(self, folder: str, frame: pd.DataFrame, name: str):
        if self.guard is not None:
            self.guard.check()  # a driver whose lease was taken over writes nothing more
        key = f"{folder}/{name}"
        try:
            self.location.write(key, lambda sink: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink,
                                                                 write_page_checksum=True))  # damage is seen on read
        except OSError as e:  # not writable, not a folder, disk full, store down: nothing half-written stays behind
            raise storage_error(self.where(folder), e) from e
        return self.location.handle(key)

    def check_writable(self, sweep: str) -> None:
        """Fail fast, before any work: create the sweep's folders and write, sync and delete a 4 KiB file
        in each. Raises StorageError when the root is not writable, not a folder, full or unreachable."""
        for table in ("probes", "cells"):
            folder = self._dir(table, sweep)
            try:
                self.location.check_writable(folder)
            except OSError as e:
                raise storage_error(self.where(folder), e) from e

    def remove_temporary(self, sweep: str, older_than_s: float = 0.0) -> int:
        """Delete temporary files a killed writer left behind (never visible to readers; an object
        store has none: a PUT is whole or absent). ``older_than_s``: spare files written to more recently
        (a driver of other cells that has just started may be writing them)."""
        if self.location.remote:
            return 0
        now = time.time()
        stale = [p for p in self.root.glob(f"*/sweep={sweep}/.part-*.tmp") if now - _mtime(p) >= older_than_s]
        for path in stale:
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                raise storage_error(path, e) from e
        return len(stale)

    def _keys(self, table: str, sweep: str) -> list[str]:
        try:
            return self.location.files(self._dir(table, sweep), "part-*.parquet")
        except OSError as e:
            raise storage_error(self.where(self._dir(table, sweep)), e) from e

    def fragments(self, table: str, sweep: str) -> list:
        """The fragments' paths (an ``ObjectKey`` with ``name``, ``read_bytes`` on an object store)."""
        return [self.location.handle(k) for k in self._keys(table, sweep)]

    def _folders(self, folder: str) -> list[str]:
        try:
            return self.location.folders(folder)
        except OSError as e:
            raise storage_error(self.where(folder), e) from e

    def sweeps(self, table: str) -> list[str]:
        names = sorted(p.split("=", 1)[1] for p in self._folders(table) if p.startswith("sweep="))
        return [name for name in names if _named(self.where(f"{table}/sweep={name}"), name)]

    def tables(self) -> list[str]:
        """Folders under the root that hold fragments, named by the name rule (the others are skipped)."""
        try:
            found = [t for t in self._folders("") if self.location.files(t, "sweep=*/part-*.parquet")]
        except OSError as e:
            raise storage_error(self.where(), e) from e
        return [t for t in found if _named(self.where(t), t)]

    def _read_fragments(self, table: str, sweep: str, read=None) -> list:
        """``read(source)`` (default: the whole fragment, as an Arrow table with one column per name)
        of every fragment of a sweep's table, as of one listing of the folder.

        A compaction writes its merged fragment before it deletes the old ones, so when a listed
        fragment has vanished, listing again finds its rows in the merged one: start over. A fragment
        that cannot be decoded is quarantined and left out.
        """
        for attempt in range(100):
            try:
                keys = self._keys(table, sweep)
                return [part if read else upgrade(table, part)
                        for key, source in zip(keys, self._sources(keys))
                        if (part := self._decode(key, source, read or self._checked_reader(table, key))) is not None]
            except FileNotFoundError:
                time.sleep(0.01 * min(attempt, 10))
        raise StorageError(self.where(self._dir(table, sweep)), OSError(errno.EAGAIN, "fragments kept vanishing while read"))

    def _checked_reader(self, table: str, key: str):
        """A fragment read whole, one column per name, and checked against its table's schema."""
        return lambda source: check_schema(table, self.where(key), _by_name(self.where(key), _arrow(source)))

    def _sources(self, keys: list[str]):
        """What the readers open, fragment by fragment: paths on a folder (read as they are decoded); on an
        object store the fetched bytes, with up to FETCHERS GETs in flight (a round trip each)."""
        if not self.location.remote or len(keys) < 2:
            return map(self._source, keys)
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(FETCHERS, len(keys))) as pool:
            return list(pool.map(self._source, keys))

    def _source(self, key: str):
        try:
            return self.location.source(key)  # an object store fetches here: transport errors are raised
        except FileNotFoundError:
            raise
        except OSError as e:
            raise storage_error(self.where(key), e) from e

    def _decode(self, key: str, source, read):
        try:
            return read(source)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # Unicode: a column name's bytes damaged
            if isinstance(e, OSError) and e.errno is not None:
                raise  # the system refused the read (permissions, I/O): not a damaged file
            self.quarantine(key, e)
            return None

    def quarantine(self, key: str, error: Exception) -> None:
        """Move an unreadable fragment to ``<root>/quarantine/<table>/sweep=<name>/`` (never delete it)."""
        said = error.what if isinstance(error, BadFile) else (str(error).splitlines() or [''])[0]
        reason = f"{type(error).__name__}: {said}"[:200]
        path, target = self.where(key), f"{QUARANTINE}/{key}"
        try:
            self.location.move(key, target)
        except FileNotFoundError:
            return  # another reader moved it first
        except OSError as e:
            log.warning("results: cannot read fragment %s (%s) and cannot move it aside (%s); it is skipped, "
                        "and its probes run again", path, reason, os.strerror(e.errno) if e.errno else e)
            return
        log.warning("results: fragment %s cannot be read (%s); moved to %s, its probes run again", path, reason,
                    self.where(target))

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
                raise UnknownResults("sweep", sweep, self.sweeps(table), self.where(table))
        frames = []
        for name in [sweep] if sweep else self.sweeps(table):
            parts = [p.to_pandas() for p in self._read_fragments(table, name) if p.num_rows]
            if parts:
                frames.append(pd.concat(parts, ignore_index=True).assign(sweep=name))
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        key = KEYS.get(table)
        if key in frame:
            frame = frame.loc[_newest_first(frame).index].drop_duplicates(["sweep", key], keep="last")
        return frame.reset_index(drop=True)

    def compact(self, table: str, sweep: str) -> None:
        """Merge a sweep's fragments into one; a kill part-way leaves duplicates that reads drop."""
        parts = self._keys(table, sweep)
        if len(parts) < 2:
            return
        frame = self.load(table, sweep, missing_ok=True).drop(columns="sweep")
        self._write(self._dir(table, sweep), frame, f"part-{time.time_ns():020d}-compact.parquet")
        self._delete(parts)

    def _delete(self, keys: list[str]) -> None:
        def delete(key: str) -> None:
            try:
                self.location.delete(key)
            except OSError as e:
                raise storage_error(self.where(key), e) from e
        if not self.location.remote or len(keys) < 2:
            for key in keys:
                delete(key)
            return
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(FETCHERS, len(keys))) as pool:
            list(pool.map(delete, keys))

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
        parts = self._keys(table, sweep)
        stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._write(f"set_aside/{table}/sweep={sweep}", frame[moving].drop(columns="sweep"), f"part-{stamp}.parquet")
        if (~moving).any():
            self._write(self._dir(table, sweep), frame[~moving].drop(columns="sweep"), f"part-{stamp}-compact.parquet")
        self._delete(parts)
        return int(moving.sum())

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with one view per table (newest row per key), for SQL over results.

        Each view is an Arrow table read through ``_read_fragments``: no path reaches DuckDB (whose
        readers treat ``[`` and ``*`` in paths as globs) and no folder name reaches SQL text.
        """
        con = duckdb.connect()
        for table in self.tables():
            parts = [part.append_column("sweep", pa.array([name] * part.num_rows, pa.string()))
                     for name in self.sweeps(table) for part in self._read_fragments(table, name)]
            if parts:
                con.register(table, _newest(_union(parts), KEYS.get(table)))
        for view, sql in VIEWS.items():  # only over tables whose rows carry what the view selects on
            try:
                con.execute(f"create view {view} as {sql}")
            except duckdb.CatalogException:
                pass  # the table it selects from is not recorded under this root
        return con


class BadFragment(BadFile, pa.ArrowInvalid):
    """A fragment that decodes but breaks its table's schema (a key or time column missing, of another type,
    or empty): quarantined like an undecodable one, since no row of it can be placed."""


# Columns every row of a table has had since the first version that wrote it (the store stamps
# recorded_at): without them a row cannot be told apart from another (key) or ordered (recorded_at).
SCHEMA = {table: (key,) for table, key in KEYS.items()}


def check_schema(table: str, where, part: pa.Table) -> pa.Table:
    """``part`` as it is, or ``BadFragment`` naming the first column that breaks the table's schema."""
    if b"pandas" in (part.schema.metadata or {}):  # read by to_pandas(): a damaged one would fail every later load
        try:
            part.slice(0, 0).to_pandas()
        except Exception as e:  # noqa: BLE001 - pyarrow rebuilds the frame from it: JSON, key and type errors
            raise BadFragment(where, f"its pandas metadata cannot be read ({type(e).__name__}: {e})") from None
    if table not in SCHEMA:
        return part
    texts = [(name, pa.types.is_string, "text") for name in SCHEMA[table]]
    for name, ok, allowed in texts + [("recorded_at", _is_time, "a timestamp or a number of seconds")]:
        if name not in part.column_names:
            raise BadFragment(where, f"no column {name!r}; allowed: a {table} fragment written by factsweep")
        column = part.column(name)
        if not (ok(column.type) or pa.types.is_large_string(column.type) and ok is pa.types.is_string):
            raise BadFragment(where, f"column {name!r} is {column.type}; allowed: {allowed}")
        if column.null_count:
            raise BadFragment(where, f"column {name!r} has {column.null_count} empty values; allowed: none")
    return part


def _is_time(kind) -> bool:
    """recorded_at as written now (a UTC timestamp) or by older versions (seconds since the epoch, or text)."""
    return (pa.types.is_timestamp(kind) or pa.types.is_floating(kind) or pa.types.is_integer(kind)
            or pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone already: nothing to remove


def _named(path, name: str) -> bool:
    """True for a folder name that may become a sweep or view name; warn about the others."""
    if is_name(name):
        return True
    log.warning("results: skipping folder %r: %r is not a valid name (letters, digits, '_', '-', '.')", str(path), name)
    return False


def _arrow(source) -> pa.Table:
    """One fragment, read as a file (not through pyarrow's dataset layer, which refuses duplicate names)."""
    with pq.ParquetFile(source, page_checksum_verification=True) as file:  # pages written without one pass as they are
        return file.read()


def _by_name(where, part: pa.Table) -> pa.Table:
    """A fragment with one column per name: an older writer's duplicate keeps its first copy, and a
    ``sweep`` column (a user's ``COPY`` of a view) is dropped, since the folder names the sweep. Warned
    once per fragment; the next compaction rewrites it clean."""
    names = part.column_names
    odd = sorted({n for i, n in enumerate(names) if n in names[:i]} | ({"sweep"} & set(names)))
    if not odd:
        return part
    if str(where) not in _WARNED:
        _WARNED.add(str(where))
        log.warning("results: fragment %s has extra or duplicate columns %s; read by name (first copy kept, "
                    "'sweep' taken from its folder)", where, ", ".join(map(repr, odd)))
    keep = [i for i, n in enumerate(names) if n != "sweep" and n not in names[:i]]
    return part.select(keep)


def _experiments(source) -> set[str]:
    with pq.ParquetFile(source) as file:
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
    index = data.select(["sweep", key, "recorded_at"] + ([EPOCH] if EPOCH in data.column_names else [])).to_pandas()
    keep = _newest_first(index).drop_duplicates(["sweep", key], keep="last").index
    return data.take(pa.array(sorted(keep), pa.int64()))


def _newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order "newest wins" reads them: by lease epoch (rows of no lease count as 0), then by
    ``recorded_at`` (one driver's own clock, within one epoch)."""
    if EPOCH not in frame:
        return frame.sort_values("recorded_at", kind="stable")
    order = pd.DataFrame({"e": pd.to_numeric(frame[EPOCH], errors="coerce").fillna(0), "t": frame["recorded_at"]})
    return frame.loc[order.sort_values(["e", "t"], kind="stable").index]


def load(table: str, sweep: str | None = None, root: str | Path = "results") -> pd.DataFrame:
    """pandas access to a results table: ``orchestrator.store.load('cells', sweep='quickstart')``.
    Raises ``UnknownResults`` for a table or sweep with nothing recorded under ``root``."""
    return Store(root).load(table, sweep)
