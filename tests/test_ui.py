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


def test_ui_on_all_interfaces_warns_that_it_is_unauthenticated(tmp_path, capsys):
    """`--host 0.0.0.0`: one warning line before anything starts (a busy port stops it right after)."""
    import socket

    from orchestrator.cli import main
    (tmp_path / "results").mkdir()
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        port = busy.getsockname()[1]
        code = main(["ui", "--root", str(tmp_path / "results"), "--host", "0.0.0.0", "--port", str(port)])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1 and out == "" and len(lines) == 2, (code, out, err)
    assert lines[0].startswith("factsweep: warning: ui: --host 0.0.0.0 makes the MLflow server, which has no "
                               "authentication, reachable from the network"), lines[0]
    assert f"cannot listen on 0.0.0.0:{port}" in lines[1]


def group_alive(pgid: int) -> bool:
    import os
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", ["SIGKILL"])  # SIGHUP (a closed terminal) is handled as SIGTERM, and without
def test_no_server_outlives_a_ui_killed_or_hung_up(tmp_path, shared_tracking, signum):  # a handler it is this case
    """`factsweep ui` ended by kill -9 (no handler runs, as SIGHUP without one): its server's whole process
    group ends too, and nothing listens on the port. (Before: the server kept serving; so it did after SIGHUP.)"""
    import os
    import signal
    import sys
    import time

    from servers import free_port
    root, port = tmp_path / "results", free_port()
    root.mkdir()
    ui = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(root), "--port", str(port),
                           "--uri", shared_tracking.split("=", 1)[1]], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    server_group = None
    try:
        line = ui.stdout.readline()
        assert "MLflow UI for" in line, line + ui.stdout.read() if ui.poll() is not None else line
        children = subprocess.run(["pgrep", "-P", str(ui.pid)], capture_output=True, text=True).stdout.split()
        server_group = os.getpgid(int(children[0]))
        assert server_group != ui.pid  # the server has its own group, apart from the ui's
        ui.send_signal(getattr(signal, signum))
        ui.wait(timeout=30)
        deadline = time.monotonic() + 30
        while group_alive(server_group) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(server_group), f"the MLflow server outlived `factsweep ui` ({signum})"
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert not listening.strip(), listening
    finally:
        for group in filter(None, [server_group, ui.pid]):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ui.wait()
