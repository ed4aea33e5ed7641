"""Real servers for tests, each ended by its own process group."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1, started in its own process group so it can be ended whole."""

    def __init__(self, root: Path, port: int, uri: str | None = None, command: list[str] | None = None):
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(root), "--port", str(port)]
            + (["--uri", uri] if uri else []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def wait(self, timeout: float = 90) -> "MlflowServer":
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError(f"MLflow server did not come up: {self.process.stdout.read()}")
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the whole group (workers can outlive the main process), SIGKILL what remains."""
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's standalone S3 server on 127.0.0.1 (its own process group), with one bucket.

    ``conditional_writes`` says whether it honours ``If-None-Match: *`` and ``If-Match`` on PUT, which
    the object-store lease needs (checked once at start-up; older moto releases ignore both)."""

    BUCKET = "factsweep-tests"

    def __init__(self, port: int):
        self.port, self.endpoint = port, f"127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.conditional_writes = False

    def wait(self, timeout: float = 60) -> "MotoServer":
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://{self.endpoint}/", timeout=2).close()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError("moto S3 server did not come up")
                time.sleep(0.3)
        client = self.client()
        client.create_bucket(Bucket=self.BUCKET)
        self.conditional_writes = _honours_conditional_writes(client, self.BUCKET)
        return self

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=f"http://{self.endpoint}", region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def root(self, prefix: str) -> str:
        return f"s3://{self.BUCKET}/{prefix}?endpoint_override={self.endpoint}&scheme=http"

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass


def _honours_conditional_writes(client, bucket: str) -> bool:
    from botocore.exceptions import ClientError
    key = "conditional-write-check"
    first = client.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
        return False
    except ClientError:
        pass
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"3", IfMatch='"not-the-etag"')
        return False
    except ClientError:
        pass
    client.put_object(Bucket=bucket, Key=key, Body=b"4", IfMatch=first["ETag"])
    client.delete_object(Bucket=bucket, Key=key)
    return True


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (``make dev`` installs the package where missing)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust authentication, loopback only), run as the
    ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root), with one database."""

    def __init__(self, port: int, database: str = "mlflow"):
        import shutil
        import tempfile
        self.port, self.database, self.bin = port, database, postgres_bin()
        self.data = Path(tempfile.mkdtemp(prefix="factsweep-pg-", dir="/tmp"))  # reachable by the postgres user
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.data, "postgres", "postgres")
        subprocess.run([*self.as_user, str(self.bin / "initdb"), "-D", str(self.data / "db"), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        self.process = subprocess.Popen(
            [*self.as_user, str(self.bin / "postgres"), "-D", str(self.data / "db"), "-h", "127.0.0.1",
             "-p", str(port), "-k", str(self.data), "-F"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.uri = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"

    def wait(self, timeout: float = 60) -> "PostgresServer":
        deadline = time.time() + timeout
        while subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise AssertionError("PostgreSQL did not come up")
            time.sleep(0.3)
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        self.database], check=True, capture_output=True)
        return self

    def stop(self) -> None:
        import shutil
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):  # SIGINT: PostgreSQL's fast shutdown
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.data, ignore_errors=True)


def mlflow_server_command(backend: str, artifacts: Path, port: int) -> list[str]:
    """`mlflow server` as a lab runs it: a database backend, artifacts proxied through the server
    (clients never write the artifact store themselves), one worker, and the Host headers it accepts
    (MLflow 3 refuses any other Host, a DNS-rebinding guard)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--serve-artifacts",
            "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]
