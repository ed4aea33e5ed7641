"""`factsweep ui` serves the sweep's runs from a real MLflow server bound to 127.0.0.1."""
from __future__ import annotations

import pytest

import json
import subprocess
import urllib.request

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from servers import MlflowServer, free_port

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_ui_serves_runs_on_loopback(ray_session, tiny_sweep):
    spec = load_spec(tiny_sweep("ui"))
    run_sweep(spec, progress=False)
    server = MlflowServer(spec.results_root, free_port())  # the default URI under --root
    try:
        server.wait()
        experiment = post(f"{server.url}/api/2.0/mlflow/experiments/search",
                          {"filter": "name = 'ui'", "max_results": 10})["experiments"][0]
        runs = post(f"{server.url}/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
        cells = [r for r in runs if {"key": "factsweep.kind", "value": "cell"} in r["data"]["tags"]]
        assert len(cells) == 4
        with urllib.request.urlopen(server.url, timeout=10) as r:
            assert "<html" in r.read().decode().lower()
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True).stdout
        assert listening.strip() and all("127.0.0.1:" in line for line in listening.strip().splitlines())
    finally:
        server.stop()
