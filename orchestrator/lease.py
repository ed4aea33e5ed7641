"""One driver per sweep across hosts: a lease kept in the store itself.

On a folder root the lease is the ``flock`` of ``orchestrator.lock`` (the kernel frees it when its
holder dies; on NFS and Lustre only where the mount supports flock: see docs/cluster.md). An object
store has neither locks nor rename, but it has conditional writes: ``<root>/locks/<sweep>.lease`` is
created with ``If-None-Match: *`` (exactly one of two racing drivers succeeds), renewed every third
of its time to live with ``If-Match`` on the ETag it last wrote, and released by writing it back
marked free. A lease not renewed for its time to live (its holder was killed, lost its network or
its host) is taken over with ``If-Match`` too. Its age is judged by the store's own clock
(``Last-Modified`` against the ``Date`` of the same answer), never by the clocks of two hosts.

Every take-over raises the lease's epoch, and every row carries the epoch of the driver that wrote
it (``orchestrator.store``), so a paused driver that wakes after losing its lease can never outrank
the driver that replaced it; it also stops at its next write, in one line.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from email.utils import parsedate_to_datetime

from orchestrator.badfile import BadFile, check_json_depth, is_count
from orchestrator.errors import Unavailable
from orchestrator.location import Folder, ObjectStore, open_root
from orchestrator.cells_lock import CellsLock
from orchestrator.lock import SweepLock, SweepLocked

TTL_VARIABLE = "FACTSWEEP_LEASE_SECONDS"
DEFAULT_TTL = 60.0


class LeaseLost(Unavailable):
    """Another driver took the sweep over (this one was not renewing in time): stop writing."""


def sweep_lease(root, sweep: str):
    """The context manager that makes this process the sweep's only driver; ``.epoch`` once entered."""
    location = open_root(root)
    if isinstance(location, Folder):
        return SweepLock(location.path, sweep)
    if location.scheme != "s3":
        raise Unavailable(f"storage.root: got {location.uri!r}; one driver per sweep needs conditional writes, "
                          "implemented for s3:// (any S3-compatible server); allowed: s3://BUCKET/PREFIX or a folder")
    return ObjectLease(location, sweep)


def cells_lease(root, sweep: str, cells: dict[str, str]):
    """The context manager that makes this process the only driver of ``cells`` ({cell_id: label}) of the
    sweep: on a folder, the cells' flocks (``orchestrator.cells_lock``: drivers of other cells run too);
    on an object store, the sweep's lease listing each driver's cells."""
    location = open_root(root)
    if isinstance(location, Folder):
        return CellsLock(location.path, sweep, cells)
    return ObjectLease(location, sweep, cells=cells) if location.scheme == "s3" else sweep_lease(root, sweep)


def _ttl() -> float:
    try:
        return max(1.0, float(os.environ.get(TTL_VARIABLE, DEFAULT_TTL)))
    except ValueError:
        return DEFAULT_TTL


class ObjectLease:
    """``with ObjectLease(store, sweep) as lease:``; raises SweepLocked at once while another holds it."""

    def __init__(self, location: ObjectStore, sweep: str, ttl: float | None = None,
                 cells: dict[str, str] | None = None):
        self.location, self.sweep, self.ttl = location, sweep, ttl or _ttl()
        self.cells = dict(cells) if cells is not None else None  # {cell_id: label}; None: the whole sweep
        self.key = f"locks/{sweep}.lease"
        self.uri = location.error_path(self.key)
        self.epoch: int | None = None
        self.lost: str | None = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._client = _client(location)

    # -- the lease object -------------------------------------------------------------------------
    def _body(self, **extra) -> bytes:
        return json.dumps({"epoch": self.epoch, "ttl": self.ttl, "pid": os.getpid(), "host": socket.gethostname(),
                           "since": self._since, "command": " ".join(sys.argv)[:500],
                           "cells": self.cells, **extra}).encode()

    def _put(self, body: bytes, **condition) -> str:
        answer = self._call(self._client.put_object, Bucket=self.location.bucket, Key=self._full(), Body=body,
                            **condition)
        return answer["ETag"]

    def _full(self) -> str:
        return "/".join(p for p in (self.location.prefix, self.key) if p)

    def _call(self, fn, **kwargs):
        """``fn(**kwargs)``, retried while the store does not answer; its own answers (412, 404) are raised."""
        from botocore.exceptions import BotoCoreError, ClientError
        for attempt in range(4):
            try:
                return fn(**kwargs)
            except ClientError:
                raise
            except BotoCoreError as e:
                if attempt == 3:
                    raise OSError(f"object store {self.location.endpoint_url() or 's3'} did not answer: {e}") from None
                time.sleep(0.25 * 2 ** attempt)

    # -- acquire, renew, release -------------------------------------------------------------------
    def __enter__(self) -> "ObjectLease":
        from botocore.exceptions import ClientError
        from orchestrator.store import storage_error
        self._since = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            try:
                found = self._call(self._client.get_object, Bucket=self.location.bucket, Key=self._full())
            except ClientError as e:
                if _code(e) not in ("NoSuchKey", "404"):
                    raise
                self.epoch = 1
                self._etag = self._put(self._body(), IfNoneMatch="*")
            else:
                held = lease_body(self.uri, found["Body"].read())
                age = _age(found)
                if not held.get("released") and age < float(held.get("ttl", DEFAULT_TTL)):
                    raise self._locked(held, age)
                self.epoch = int(held.get("epoch") or 0) + 1
                self._etag = self._put(self._body(), IfMatch=found["ETag"])
        except ClientError as e:
            if _code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise SweepLocked(f"sweep {self.sweep!r} was just taken by another driver (lease {self.uri}); "
                                  "wait for it to finish, or stop it") from None
            raise storage_error(self.uri, OSError(f"{_code(e)}: {e}")) from None
        except OSError as e:
            raise storage_error(self.uri, e) from None
        except BadFile as e:  # its epoch is unknown: taking it over could reuse one, so a person decides
            raise SweepLocked(f"{e}; delete it once no driver runs sweep {self.sweep!r}, then run again") from None
        self._renewer = threading.Thread(target=self._renew, name="factsweep-lease", daemon=True)
        self._renewer.start()
        return self

    def _locked(self, held: dict, age: float) -> SweepLocked:
        return SweepLocked(
            f"sweep {self.sweep!r} is being run by pid {held.get('pid')} on host {held.get('host')} since "
            f"{held.get('since')}{self._whose(held.get('cells'))} (lease {self.uri}, renewed {age:.0f} s ago, free "
            f"{max(0.0, held.get('ttl', 0) - age):.0f} s after its last renewal); wait for it to finish, or stop it")

    def _whose(self, theirs: dict | None) -> str:
        """Which cells the holder runs, said truly: the shared ones, or that they are other cells (the
        lease of an object store admits one driver per sweep; a folder root runs disjoint cells together)."""
        if theirs is None or self.cells is None:
            return " (the whole sweep)" if theirs is None and self.cells is not None else ""
        shared = [label for cell, label in self.cells.items() if cell in theirs]
        if shared:
            more = f" and {len(shared) - 4} more" if len(shared) > 4 else ""
            return f" on {len(shared)} of these cells ({'; '.join(shared[:4])}{more})"
        return (f" on {len(theirs)} other cell(s), none of these; an object-store lease admits one driver per "
                "sweep (a folder root runs drivers of disjoint cells side by side)")

    def _renew(self) -> None:
        from botocore.exceptions import ClientError
        last = time.monotonic()
        while not self._stop.wait(self.ttl / 3):
            try:
                self._etag = self._put(self._body(), IfMatch=self._etag)
                last = time.monotonic()
            except ClientError as e:
                if _code(e) in ("PreconditionFailed", "412"):
                    self.lost = "another driver took it over"
                    return
            except OSError:
                pass  # the store did not answer: try again, until the time to live has passed
            if time.monotonic() - last > self.ttl:
                self.lost = f"it could not be renewed for {self.ttl:.0f} s"
                return

    def others(self) -> list[dict]:
        """Other live drivers of the sweep: none, while this lease is held (one driver per sweep)."""
        return []

    def check(self) -> None:
        """Raise LeaseLost once the lease is no longer this driver's: it must not write again."""
        if self.lost:
            raise LeaseLost(f"sweep {self.sweep!r}: this driver lost its lease {self.uri} ({self.lost}); it stops "
                            "here and what it recorded stays; another driver may be running the sweep")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if self.lost or self._etag is None:
            return
        try:  # kept, marked free: the next driver's epoch follows this one's
            self._put(self._body(released=True), IfMatch=self._etag)
        except Exception:  # noqa: BLE001 - an unreleased lease only makes the next driver wait for its expiry
            pass


def _client(location: ObjectStore):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise Unavailable(f"storage.root {location.uri!r}: the object-store lease needs boto3: "
                          "pip install 'factsweep[lab]'") from None
    region = location.options.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=location.endpoint_url(), region_name=region,
                        config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2}))


def _code(error) -> str:
    return str(error.response.get("Error", {}).get("Code") or error.response.get("ResponseMetadata", {})
               .get("HTTPStatusCode", ""))


def _age(answer: dict) -> float:
    """Seconds since the object was last written, by the store's clock alone."""
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    now = parsedate_to_datetime(date) if date else None
    if now is None:
        return 0.0  # no Date header: treat as just renewed (wait a whole time to live)
    return max(0.0, (now - answer["LastModified"]).total_seconds())


def lease_body(uri: str, raw: bytes) -> dict:
    """A lease object's JSON, checked against what ``SweepLease`` writes; ``BadFile`` otherwise."""
    check_json_depth(uri, raw)
    try:
        held = json.loads(raw or b"{}")
    except ValueError as e:
        raise BadFile(uri, f"lease is not JSON ({e})") from None
    if not isinstance(held, dict):
        raise BadFile(uri, f"lease is a JSON {type(held).__name__}; allowed: an object")
    ttl = held.get("ttl", DEFAULT_TTL)
    if not is_count(held.get("epoch") or 0) or isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise BadFile(uri, "lease epoch or ttl is not a number; allowed: a lease written by factsweep")
    for key in ("pid", "host", "since"):
        if not isinstance(held.get(key), (int, str, type(None))) or not str(held.get(key)).isprintable():
            raise BadFile(uri, f"lease {key} is not printable text; allowed: a lease written by factsweep")
    return held
