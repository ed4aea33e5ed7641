"""Where the record lives: a local (or shared POSIX) folder, or an object store through ``pyarrow.fs``.

``storage.root`` is a path (the laptop default, unchanged: temporary file, fsync, rename) or a URI
``s3://BUCKET/PREFIX`` (``?endpoint_override=HOST:PORT&scheme=http`` for MinIO, moto, Ceph...; the
usual ``AWS_*`` variables give credentials) or ``gs://BUCKET/PREFIX``. An object store has no rename:
a fragment is built whole in memory and sent as one PUT, which the store makes visible whole or not at
all, so a writer killed or cut off half-way leaves nothing. Both kinds expose the same few operations
to ``orchestrator.store``; paths inside them are plain strings ("probes/sweep=s/part-1.parquet").
"""
from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from orchestrator.atomic import write_atomic

SCHEMES = ("s3", "gs")
RETRIES = 3  # attempts of an object-store call that failed in transit (network, server down) before giving up


class BadRoot(ValueError):
    """``storage.root`` that names no usable place: one line with the key and the allowed values. A sweep
    file's root is checked by ``spec.root_problem``; this one comes from ``--root`` (the CLI prints it as
    bad input, exit 2)."""

    def __init__(self, line: str):
        super().__init__(line)
        self.source = "--root"
        self.key, _, self.message = line.partition(": ")


ALLOWED = ("a folder path, s3://BUCKET/PREFIX (?endpoint_override=HOST:PORT&scheme=http for an S3-compatible "
           "server) or gs://BUCKET/PREFIX")


def local_problem(root) -> str | None:
    """Why a local ``storage.root`` is refused, or None. A leading ``~`` is expanded by a shell but not by
    the YAML, Python or MLflow's sqlite URI (each would read it differently), and ``file:`` is no folder
    name: refused, so that every part of factsweep reads a root one way. ``%``, ``?`` and ``#`` are
    plain characters of a folder name (quoted wherever the root becomes a URI)."""
    text = str(root)
    if text.startswith("~"):
        return f"got {text!r}: '~' is not expanded; allowed: {ALLOWED}; write the full path, e.g. {os.path.expanduser(text)!r}"
    if text[:5].lower() == "file:":
        return f"got {text!r}: file: is not a folder path; allowed: {ALLOWED}"
    return None


def is_remote(root) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``); any other text is a local path."""
    return isinstance(root, str) and "://" in root


def open_root(root) -> "Folder | ObjectStore":
    if isinstance(root, (Folder, ObjectStore)):
        return root
    if not is_remote(root):
        return Folder(root)
    scheme = root.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise BadRoot(f"storage.root: {local_problem(root) or f'got {root!r}; allowed: {ALLOWED}'}")
    return ObjectStore(root)


class RemoteRoot(str):
    """An object-store root where a ``Path`` is expected (``Scope.root``): ``Store`` opens the URI, while
    ``root / name`` is a local folder, ``results/<bucket>/<prefix>/name``, for the files that local
    libraries write (reports, figures, CSVs): those are views, rebuilt from the record at any time."""

    def __truediv__(self, name: str) -> Path:
        parts = urlsplit(str(self))
        return Path("results") / parts.netloc / parts.path.strip("/") / name


def transient(error: BaseException) -> bool:
    """An I/O error that says nothing about the data: the network or the server (``OSError`` without
    an errno, as pyarrow raises for AWS/GCS transport errors). Retried, then fatal; never quarantined."""
    return isinstance(error, OSError) and not isinstance(error, FileNotFoundError) and error.errno is None


class Folder:
    """A POSIX folder: the laptop default, and a shared file system mounted on every host."""

    remote = False

    def __init__(self, root):
        if problem := local_problem(root):
            raise BadRoot(f"storage.root: {problem}")
        self.path = Path(root)
        self.uri = str(root)

    def __str__(self) -> str:
        return self.uri

    def local(self, key: str) -> Path:
        return self.path / key if key else self.path

    def write(self, key: str, fill) -> str:
        """``fill(target)`` writes a file; it lands at ``key`` whole (temporary file, fsync, rename)."""
        final = self.local(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(final, fill, sync=True)
        return key

    def write_bytes(self, key: str, data: bytes) -> None:
        self.write(key, lambda tmp: Path(tmp).write_bytes(data))

    def read_bytes(self, key: str) -> bytes:
        return self.local(key).read_bytes()

    def source(self, key: str):
        """What the Parquet readers open: the file's path."""
        return self.local(key)

    def check_writable(self, folder: str) -> None:
        import uuid
        target = self.local(folder)
        check = target / f".part-check-{uuid.uuid4().hex[:8]}.tmp"  # removed by remove_temporary if killed
        target.mkdir(parents=True, exist_ok=True)
        try:
            with open(check, "wb") as fh:
                fh.write(bytes(4096))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            check.unlink(missing_ok=True)

    def files(self, folder: str, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.path)) for p in self.local(folder).glob(pattern))

    def folders(self, folder: str) -> list[str]:
        base = self.local(folder)
        return sorted(p.name for p in base.glob("*") if p.is_dir()) if base.exists() else []

    def move(self, key: str, target: str) -> None:
        self.local(target).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.local(key), self.local(target))

    def delete(self, key: str) -> None:
        self.local(key).unlink(missing_ok=True)

    def error_path(self, key: str) -> Path:
        return self.local(key)

    def handle(self, key: str) -> Path:
        return self.local(key)


class ObjectStore:
    """An S3 or GCS bucket prefix through pyarrow.fs. Calls that fail in transit are retried a few
    times, then raised; a missing object is FileNotFoundError as on a folder."""

    remote = True

    def __init__(self, uri: str):
        parts = urlsplit(uri)
        self.uri, self.scheme = uri, parts.scheme.lower()
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.options = dict(parse_qsl(parts.query))
        if not self.bucket:
            raise BadRoot(f"storage.root: got {uri!r}; allowed: {self.scheme}://BUCKET/PREFIX (a bucket is required)")
        self.fs = self._filesystem()

    def _filesystem(self):
        from pyarrow import fs
        if self.scheme == "gs":
            return fs.GcsFileSystem(**{k: v for k, v in self.options.items() if k in ("endpoint_override", "scheme")})
        known = {"endpoint_override", "scheme", "region"}
        unknown = set(self.options) - known
        if unknown:
            raise BadRoot(f"storage.root: got the query key {sorted(unknown)[0]!r} in {self.uri!r}; allowed: "
                          + ", ".join(sorted(known)))
        # allow_delayed_open: a small object is sent with one PutObject at close, never a multipart upload.
        return fs.S3FileSystem(endpoint_override=self.endpoint_host(), scheme=self.options.get("scheme"),
                               region=self.options.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                               connect_timeout=5, request_timeout=20, allow_delayed_open=True,
                               background_writes=False, retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=2))

    def endpoint_host(self) -> str | None:
        endpoint = self.options.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") \
            or os.environ.get("AWS_ENDPOINT_URL")
        return endpoint.split("://", 1)[-1] if endpoint else None

    def endpoint_url(self) -> str | None:
        host = self.endpoint_host()
        return f"{self.options.get('scheme', 'https')}://{host}" if host else None

    def __str__(self) -> str:
        return self.uri

    def full(self, key: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _retry(self, call, *args):
        for attempt in range(RETRIES):
            try:
                return call(*args)
            except OSError as e:
                if not transient(e) or attempt == RETRIES - 1:
                    raise
                time.sleep(0.25 * 2 ** attempt)

    def write(self, key: str, fill) -> str:
        """``fill(sink)`` writes into memory; the bytes then go to ``key`` in one PUT."""
        sink = pa.BufferOutputStream()
        fill(sink)
        self.write_bytes(key, sink.getvalue().to_pybytes())
        return key

    def write_bytes(self, key: str, data: bytes) -> None:
        def put():
            with self.fs.open_output_stream(self.full(key)) as out:
                out.write(data)
        self._retry(put)

    def read_bytes(self, key: str) -> bytes:
        def get():
            with self.fs.open_input_file(self.full(key)) as f:
                return f.readall()
        return self._retry(get)

    def source(self, key: str):
        """What the Parquet readers open: the whole object, fetched here (decode errors come later)."""
        return pa.BufferReader(self.read_bytes(key))

    def check_writable(self, folder: str) -> None:
        key = f"{folder}/.part-check"
        self.write_bytes(key, bytes(4096))
        self.delete(key)

    def _list(self, folder: str, recursive: bool):
        from pyarrow import fs
        selector = fs.FileSelector(self.full(folder), recursive=recursive, allow_not_found=True)
        return self._retry(self.fs.get_file_info, selector)

    def files(self, folder: str, pattern: str) -> list[str]:
        """Keys under ``folder`` matching ``pattern`` (``*`` within one name, ``*/x`` across levels)."""
        base = self.full("")
        depth = pattern.count("/")
        found = []
        for info in self._list(folder, recursive=depth > 0):
            if info.type != 2:  # FileType.File
                continue
            key = info.path[len(base):].lstrip("/") if base else info.path
            relative = key[len(folder):].lstrip("/") if folder else key
            if relative.count("/") == depth and fnmatch.fnmatchcase(relative, pattern):
                found.append(key)
        return sorted(found)

    def folders(self, folder: str) -> list[str]:
        return sorted(info.base_name for info in self._list(folder, recursive=False) if info.type == 3)

    def move(self, key: str, target: str) -> None:
        self.write_bytes(target, self.read_bytes(key))
        self.delete(key)

    def delete(self, key: str) -> None:
        try:
            self._retry(self.fs.delete_file, self.full(key))
        except FileNotFoundError:
            pass

    def error_path(self, key: str) -> str:
        return f"{self.uri.split('?', 1)[0].rstrip('/')}/{key}" if key else self.uri.split("?", 1)[0]

    def handle(self, key: str) -> "ObjectKey":
        return ObjectKey(self, key)


class ObjectKey:
    """A fragment of an object-store root as tests and tools handle a ``Path``: name, bytes, unlink."""

    def __init__(self, store: ObjectStore, key: str):
        self.store, self.key = store, key
        self.name = key.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.store.error_path(self.key)

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectKey) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def read_bytes(self) -> bytes:
        return self.store.read_bytes(self.key)

    def write_bytes(self, data: bytes) -> None:
        self.store.write_bytes(self.key, data)

    def unlink(self, missing_ok: bool = False) -> None:
        self.store.delete(self.key)
