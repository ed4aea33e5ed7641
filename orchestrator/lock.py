"""The whole sweep to one process: an exclusive lock under the results root, held by ``mlflow-sync`` and
``extra-cells --move-aside`` (a ``run`` locks only its cells, and holds this lock shared:
``orchestrator.cells_lock``).

Rewriting a sweep's tables or its MLflow view while a driver appends to them would lose rows. The lock is ``fcntl.flock`` on ``<root>/locks/<sweep>.lock``: the kernel
releases it when its holder exits in any way, kill -9 included, so a lock left by a dead process is
simply taken over, and no pid has to be checked for liveness (pids are reused, and mean nothing on
another host). The file also records the holder's pid, host and start time, so a second driver can
say who holds it. On release the file is removed while still locked; an acquirer checks that the
file it locked is still the one at the path, so a removed file can never be held by two drivers.
Each holder (and each driver of cells) raises ``<root>/locks/<sweep>.epoch`` by one and stamps it on
its rows (``orchestrator.lease``): on a folder shared between hosts, "newest row wins" then never depends on
which host's clock runs ahead.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from orchestrator.badfile import check_json_depth, is_count
from orchestrator.errors import Unavailable
from orchestrator.redact import redact
from orchestrator.store import storage_error


class SweepLocked(Unavailable):
    """Another live driver holds the sweep."""


class SweepLock:
    """``with SweepLock(root, sweep):`` — raises SweepLocked at once if another process holds it."""

    def __init__(self, root: str | Path, sweep: str):
        self.path = Path(root) / "locks" / f"{sweep}.lock"
        self.sweep = sweep
        self.epoch: int | None = None
        self._fd: int | None = None

    def __enter__(self) -> "SweepLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while self._fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _holder(fd) or _drivers_line(self.path.parent, self.sweep)
                    os.close(fd)
                    raise SweepLocked(f"sweep {self.sweep!r} is being run by {holder} (lock {self.path}); wait for "
                                      "it to finish, or stop it: a second driver would run the same probes") from None
                if same_file(fd, self.path):
                    self._fd = fd
                else:  # the previous holder removed the file after we opened it: lock the new one
                    os.close(fd)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(holder_info()).encode(), 0)
            self.epoch = next_epoch(self.path.parent, self.sweep)
        except OSError as e:
            self._close()
            raise storage_error(self.path.parent, e) from e
        except BaseException:  # a stop signal mid-way: a half-taken lock is released, not kept by a live process
            self._close()
            raise
        return self

    def check(self) -> None:
        """The kernel keeps a flock for as long as this process lives: it cannot be lost."""

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # still locked: no one can be holding the file we remove
            except OSError:
                pass  # a leftover file is harmless: the next driver takes it over
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def same_file(fd: int, path: Path) -> bool:
    """Whether the open ``fd`` is still the file at ``path`` (its last holder may have removed it)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def next_epoch(locks: Path, sweep: str) -> int:
    """One more than the last holder's, kept in ``<sweep>.epoch`` (never removed). Drivers of disjoint cells
    draw their epochs at the same time, so the file is read and raised under its own flock, in place: the
    number only grows, so the new digits cover the old ones whole (no rename, which would change the file
    a second driver waits on)."""
    fd = os.open(locks / f"{sweep}.epoch", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a read and a write: never long
        try:
            last = int(os.pread(fd, 64, 0).decode().strip() or 0)
        except ValueError:
            last = 0
        os.pwrite(fd, f"{last + 1}\n".encode(), 0)
        os.fsync(fd)
        return last + 1
    finally:
        os.close(fd)  # releases the flock


def holder_info() -> dict:
    """What a lock file says of its holder (no credentials: others read it)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": redact(" ".join(sys.argv))[:500]}


def describe(info: dict) -> str:
    return f"pid {info['pid']} on host {info['host']} since {info['since']}"


def read_info(fd: int) -> dict | None:
    """The holder's record in a lock file, or None when it has not written one (yet)."""
    try:
        raw = os.pread(fd, 4096, 0) or b"{}"
        check_json_depth("lock", raw)
        info = json.loads(raw)
        pid, host, since = info["pid"], info["host"], info["since"]
        if not (is_count(pid) and all(isinstance(v, str) and v.isprintable() and len(v) < 256 for v in (host, since))):
            raise ValueError("not the lock file's schema")  # a file someone else wrote: never printed as it is
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _holder(fd: int) -> str | None:
    """'pid 123 on host h since ...' from the lock file, or None when it names no one."""
    info = read_info(fd)
    return describe(info) if info else None


def _drivers_line(locks: Path, sweep: str) -> str:
    """Who holds the name shared: the drivers of some of its cells (``orchestrator.cells_lock``)."""
    from orchestrator.cells_lock import live_drivers
    drivers = live_drivers(locks, sweep)
    if not drivers:
        return "another process (it has not written its pid and host yet)"
    return " and ".join(describe(d) for d in drivers[:3]) + (f" and {len(drivers) - 3} more" if len(drivers) > 3 else "")
