"""Drivers lock the cells they run, not the sweep's name: two people can split one sweep (other seeds).

A ``run`` holds, with ``fcntl.flock`` (freed by the kernel when its holder dies, kill -9 included):

- ``<root>/locks/<sweep>.lock`` *shared*: commands that rewrite the whole sweep (``extra-cells
  --move-aside``, ``mlflow-sync``) take it exclusively (``orchestrator.lock.SweepLock``), so they wait for
  no driver and no driver starts under them;
- ``<root>/locks/<sweep>/<cell_id>.lock`` *exclusively*, for every cell of its sweep file (done or not),
  each naming its holder and the cell: a second driver with any of those cells is refused in one line
  naming the shared cells and the driver running them; one with other cells runs;
- ``<root>/locks/<sweep>/drivers/<host>.<pid>.<random>.lock`` exclusively: the list of live drivers, by
  which a driver tells an invocation left 'running' by a dead one from one still running, and which
  probing never disturbs (no one else ever takes that file).

Files are removed on release while still locked, and an acquirer checks that the file it locked is still
the one at the path (as ``orchestrator.lock`` does), so no removed file is ever held by two drivers.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from pathlib import Path

from orchestrator.lock import SweepLocked, describe, holder_info, next_epoch, read_info, same_file
from orchestrator.store import storage_error

SHOWN = 4  # cells named in a refusal; the rest are counted


class Busy(Exception):
    """The file is locked by another process; ``info`` is its holder's record (None: not written yet)."""

    def __init__(self, info: dict | None):
        super().__init__(info)
        self.info = info


def _lock(path: Path, mode: int) -> int:
    """An open descriptor of ``path`` holding ``mode`` (LOCK_SH or LOCK_EX); raises Busy at once."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            info = read_info(fd)
            os.close(fd)
            raise Busy(info) from None
        if same_file(fd, path):
            return fd
        os.close(fd)  # removed by its last holder after we opened it: lock the new one


def _release(fd: int, path: Path) -> None:
    """Remove the file while still holding it exclusively, then close (which unlocks)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a leftover file is harmless: the next holder takes it over
    os.close(fd)


def live_drivers(locks: Path, sweep: str) -> list[dict]:
    """The records of the drivers of ``sweep`` alive now (each holds its file in ``drivers/``); a file no
    one holds (its driver died) is removed."""
    found = []
    for path in sorted((locks / sweep / "drivers").glob("*.lock")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = read_info(fd)
            found.append(info or {"pid": "?", "host": "?", "since": "?"})
            os.close(fd)
            continue
        _release(fd, path)  # its driver is gone (the name is unique: no one will take this file again)
    return found


class CellsLock:
    """``with CellsLock(root, sweep, {cell_id: label}) as lock:``; raises SweepLocked at once when another
    process holds the whole sweep or any of these cells. ``.epoch`` once entered."""

    def __init__(self, root: str | Path, sweep: str, cells: dict[str, str]):
        self.locks = Path(root) / "locks"
        self.sweep, self.cells = sweep, dict(cells)
        self.name_path = self.locks / f"{sweep}.lock"
        self.epoch: int | None = None
        self._held: dict[Path, int] = {}  # path -> descriptor, the name's last

    def __enter__(self) -> "CellsLock":
        try:
            (self.locks / self.sweep / "drivers").mkdir(parents=True, exist_ok=True)
            self._take_name()
            info = holder_info()
            me = self.locks / self.sweep / "drivers" / f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.lock"
            self._write(me, _lock(me, fcntl.LOCK_EX), info)
            busy: dict[str, dict | None] = {}
            for cell in sorted(self.cells):
                path = self.locks / self.sweep / f"{cell}.lock"
                try:
                    self._write(path, _lock(path, fcntl.LOCK_EX), {**info, "cell": self.cells[cell]})
                except Busy as e:
                    busy[cell] = e.info
            if busy:
                raise self._refusal(busy)
            self.epoch = next_epoch(self.locks, self.sweep)
        except OSError as e:
            self.__exit__()
            raise storage_error(self.locks, e) from e
        except SweepLocked:
            self.__exit__()
            raise
        return self

    def _take_name(self) -> None:
        try:
            fd = _lock(self.name_path, fcntl.LOCK_SH)
        except Busy as e:
            holder = describe(e.info) if e.info else "another process (it has not written its pid and host yet)"
            raise SweepLocked(f"sweep {self.sweep!r} is being run by {holder} (lock {self.name_path}); wait for it "
                              "to finish, or stop it: it rewrites the sweep's tables") from None
        os.ftruncate(fd, 0)  # a record left by a killed exclusive holder would name the wrong process
        self._name_fd = fd

    def _write(self, path: Path, fd: int, info: dict) -> None:
        self._held[path] = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    def _refusal(self, busy: dict[str, dict | None]) -> SweepLocked:
        """One line: which of this file's cells are taken, and by whom."""
        holders: dict[str, list[str]] = {}
        for cell, info in busy.items():
            who = describe(info) if info else "another process (it has not written its pid and host yet)"
            holders.setdefault(who, []).append(self.cells[cell])
        parts = []
        for who, labels in holders.items():
            more = f" and {len(labels) - SHOWN} more" if len(labels) > SHOWN else ""
            parts.append(f"{who} on {len(labels)} of these cells ({'; '.join(labels[:SHOWN])}{more})")
        return SweepLocked(f"sweep {self.sweep!r} is being run by {' and by '.join(parts)} (locks under "
                           f"{self.locks / self.sweep}); wait for it to finish or stop it, or run cells it does "
                           "not run (other seeds, other values)")

    def others(self) -> list[dict]:
        """The other live drivers of this sweep (their cells are disjoint from these)."""
        mine = {(socket.gethostname(), os.getpid())}
        return [d for d in live_drivers(self.locks, self.sweep) if (d.get("host"), d.get("pid")) not in mine]

    def check(self) -> None:
        """The kernel keeps a flock for as long as this process lives: it cannot be lost."""

    def __exit__(self, *exc) -> None:
        for path, fd in list(self._held.items()):
            _release(fd, path)
        self._held.clear()
        fd, self._name_fd = getattr(self, "_name_fd", None), None
        if fd is None:
            return
        try:  # the last driver out removes the name's file; the others leave it to the drivers still in
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        _release(fd, self.name_path)


def cell_labels(spec) -> dict[str, str]:
    """Each cell of a sweep file by what tells it apart from the others (``seed=3``), for lock messages."""
    from orchestrator import cell_columns
    from orchestrator.identity import cell_id
    keys = cell_columns.apart(spec.experiment, spec.varying)
    labels = {}
    for config in spec.cells:
        cid = cell_id(spec.experiment.name, config)
        labels[cid] = " ".join(f"{k}={config.get(k)}" for k in keys) or f"cell {cid}"
    return labels
