"""``factsweep ui``: an MLflow server for one tracking store, on 127.0.0.1, that ends when we end.

The server runs in its own process group under a small watcher that holds the read end of a pipe whose
only write end we hold: SIGINT, SIGTERM, SIGHUP or our exit stop the whole group, and so does our death
by kill -9 (the kernel closes the pipe, the watcher ends the group), so no server is left listening. A
busy port or a store the server cannot open is one line and exit 1, not a log line and exit 0.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator import dashboard
from orchestrator.redact import redact

START_TIMEOUT = 120.0


class UiError(Exception):
    """The UI cannot be served: one line saying why and what to do."""


def _mlflow() -> str:
    found = shutil.which("mlflow", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        raise UiError("the mlflow command is not installed; allowed: pip install mlflow")
    return found


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UiError(f"cannot listen on {host}:{port} ({e.strerror}); allowed: a free port, e.g. --port "
                          f"{port + 1}") from None


def check_store(uri: str) -> None:
    """An existing sqlite store must be a database (a missing one is created by the server)."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise UiError(f"{path} is not an SQLite database; allowed: the mlflow.db that `factsweep run` "
                          "wrote (move the damaged file aside; `factsweep mlflow-sync SWEEP.yaml` rebuilds it)")


def _get(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def experiments(base: str) -> list[dict]:
    found = _get(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 1000}).get("experiments", [])
    return [e for e in found if e["name"] != "Default"]


def retire_default(base: str) -> None:
    """Delete the empty "Default" experiment the server made in a store of ours (see
    ``tracking.retire_default``); one with runs someone logged there stays."""
    found = _get(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 1000}).get("experiments", [])
    if any(e["experiment_id"] == "0" for e in found) and not _get(
            f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"], "max_results": 1,
                                                   "run_view_type": "ALL"}).get("runs"):
        _get(f"{base}/api/2.0/mlflow/experiments/delete", {"experiment_id": "0"})


def links(base: str, experiment: dict) -> list[str]:
    """The lines that lead to one sweep: its cell runs' table and, when it has one, its sweep run (the
    report, charts and summary), each in the model-training view."""
    eid = experiment["experiment_id"]
    lines = [f"  {experiment['name']}: {dashboard.url(base, eid)}"]
    try:
        runs = _get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "max_results": 5, "filter":
                    "tags.`factsweep.kind` = 'sweep'"}).get("runs", [])
    except (urllib.error.URLError, OSError, ValueError):
        runs = []
    for run in runs:
        lines.append(f"    sweep run {run['info'].get('run_name', '')}: "
                     f"{dashboard.run_url(base, eid, run['info']['run_id'])}")
    return lines


# The watcher: runs the server in its (new) process group and ends the group when the pipe on fd argv[1]
# reaches end of file (its parent is gone, however it died), on SIGTERM or SIGHUP; exits with the server's status.
WATCHER = """
import os, signal, subprocess, sys, threading, time
lifeline = int(sys.argv[1])
server = subprocess.Popen(sys.argv[2:])
def end(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, end)
signal.signal(signal.SIGHUP, end)
threading.Thread(target=lambda: (os.read(lifeline, 1), os.kill(os.getpid(), signal.SIGTERM)), daemon=True).start()
sys.exit(server.wait())
"""


class Server:
    """An ``mlflow server`` in its own process group, under a watcher that ends it when we end."""

    def __init__(self, uri: str, artifacts: Path, host: str, port: int):
        self.base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        self.log = tempfile.TemporaryFile()
        command = [_mlflow(), "server", "--backend-store-uri", uri, "--host", host, "--port", str(port),
                   "--workers", "1", "--artifacts-destination", str(artifacts)]
        lifeline, self._lifeline = os.pipe()  # the write end stays here, not inherited: only our death closes it
        try:
            self.process = subprocess.Popen([sys.executable, "-c", WATCHER, str(lifeline), *command], stdout=self.log,
                                            stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(lifeline,))
        finally:
            os.close(lifeline)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UiError(f"the MLflow server stopped at start ({self.last_line()}); allowed: a usable "
                              "store and a free port")
            try:
                _get(f"{self.base}/api/2.0/mlflow/experiments/search", {"max_results": 1})
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.5)
        self.stop()
        raise UiError(f"the MLflow server did not answer within {timeout:.0f}s ({self.last_line()})")

    def last_line(self) -> str:
        self.log.seek(0)
        lines = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["no output"])[-1].strip()[:300]

    def stop(self) -> None:
        """End the server's whole process group (uvicorn spawns workers): TERM, then KILL."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        try:  # workers that outlived the leader
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


def serve(uri: str, artifacts: Path, host: str, port: int, *, out=sys.stdout) -> int:
    """Run the UI until interrupted; return the exit status. A tracking server already is a UI: its
    sweeps' URLs are printed and nothing is started."""
    if uri.startswith(("http://", "https://")):
        try:
            found = experiments(uri.rstrip("/"))
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UiError(f"cannot reach the tracking server {redact(uri)} ({redact(str(e))}); allowed: a running MLflow server") from None
        for e in found:
            print("\n".join(redact(line) for line in links(uri.rstrip("/"), e)), file=out)
        return 0
    check_port(host, port)
    check_store(uri)
    server = Server(uri, artifacts, host, port)

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}  # a closed terminal too
    try:
        server.wait_ready()
        retire_default(server.base)
        print(f"MLflow UI for {redact(uri)} at {dashboard.home_url(server.base)}  (Ctrl-C stops it)", file=out)
        found = experiments(server.base)
        for e in found:
            print("\n".join(links(server.base, e)), file=out)
        print(f"{len(found)} sweep(s) in this store", file=out)
        out.flush()
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
