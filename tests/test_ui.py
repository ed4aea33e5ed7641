"""`factsweep ui` serves the sweep's runs from a real MLflow server bound to 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_ui_serves_runs_on_loopback(ray_session, tiny_sweep):
    spec = load_spec(tiny_sweep("ui"))
    run_sweep(spec, progress=False)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ui", "--root", spec.results_root, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError(f"MLflow UI did not come up: {server.stdout.read() if server.poll() is not None else ''}")
                time.sleep(0.5)
        experiment = post(f"{base}/api/2.0/mlflow/experiments/search",
                          {"filter": "name = 'ui'", "max_results": 10})["experiments"][0]
        runs = post(f"{base}/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
        cells = [r for r in runs if {"key": "factsweep.kind", "value": "cell"} in r["data"]["tags"]]
        assert len(cells) == 4
        with urllib.request.urlopen(base, timeout=10) as r:
            assert "<html" in r.read().decode().lower()
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert listening.strip() and all("127.0.0.1:" in line for line in listening.strip().splitlines())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
