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

    def __init__(self, root: Path, port: int, uri: str | None = None):
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(root), "--port", str(port)]
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
