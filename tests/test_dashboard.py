"""The MLflow dashboard as a researcher sees it: a real `factsweep ui` and a real headless Chromium.

Screenshots land in ``$FACTSWEEP_TEST_ARTIFACTS`` (default ``.test-artifacts/`` in the repository).
Chromium comes from Debian's package (``make test`` installs it); this test never skips.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator import dashboard
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from servers import free_port

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("FACTSWEEP_TEST_ARTIFACTS", REPO / ".test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
# MLflow 3.17 opens its chat assistant over the page on a first visit; a reader closes it once.
QUIET_ASSISTANT = ("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                   "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true')")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


def start_ui(root: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    """`factsweep ui` as a user starts it; returns the process and the lines it printed once ready."""
    process = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(root), "--port",
                                str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "sweep(s) in this store" in line:
            return process, lines
    stop(process)
    raise AssertionError(f"factsweep ui did not say it was ready: {lines}")


def stop(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=20)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def listening(port: int) -> str:
    return subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.strip()


def browser(playwright):
    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs Debian's chromium package"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"])


def test_runs_table_shows_params_and_metrics_and_the_sweep_run_holds_the_report(ray_session, tiny_sweep, capsys):
    from playwright.sync_api import sync_playwright

    from orchestrator.cli import main

    path = tiny_sweep("dash")
    assert main(["run", str(path)]) == 0  # the CLI: runs, then writes the report and logs it to MLflow
    capsys.readouterr()
    spec = load_spec(path)
    port = free_port()
    process, lines = start_ui(Path(spec.results_root), port)
    try:
        base = f"http://127.0.0.1:{port}"
        url = next(re.search(r"(http://\S+/runs\?\S+)", line).group(1) for line in lines if "dash:" in line)
        experiment = post(f"{base}/api/2.0/mlflow/experiments/search", {"filter": "name = 'dash'", "max_results": 5})
        eid = experiment["experiments"][0]["experiment_id"]
        runs = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "max_results": 100})["runs"]
        kinds = [next(t["value"] for t in r["data"]["tags"] if t["key"] == "factsweep.kind") for r in runs]
        assert sorted(kinds) == ["cell"] * 4 + ["sweep"]  # one run per cell under one run per sweep
        names = [r["info"]["run_name"] for r in runs]
        assert len(set(names)) == len(names)
        sweep_run = runs[kinds.index("sweep")]["info"]["run_id"]
        links = [m.group(1) for line in lines for m in [re.search(r"(http://\S+)", line)] if m]
        assert len(links) == 3 and all("?workflowType=machine_learning" in link for link in links), lines
        assert f"/runs/{sweep_run}?" in links[2]  # the sweep run's own page
        active = post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
        assert [e["name"] for e in active] == ["dash"]  # no empty "Default" beside the sweep
        cells = [r for r, kind in zip(runs, kinds) if kind == "cell"]
        assert all(r["info"]["run_name"].endswith(" seed=0") for r in cells), names
        gd = next(r for r in cells if r["info"]["run_name"].startswith("gd "))
        gd_params = {p["key"]: p["value"] for p in gd["data"]["params"]}
        assert gd_params["gd_lr"] == "0.02" and gd_params["geometry"] == "spherical"
        assert not [k for k in gd_params if k in ("beta", "spike_on", "kappa") or k.startswith(("llm_", "hebbian"))]
        summary = runs[kinds.index("sweep")]["data"]
        sweep_params = {p["key"]: p["value"] for p in summary["params"]}
        assert sweep_params["grid.method"] == "[gd, hebbian_whitened]" and sweep_params["search.strategy"] == "kary"
        assert sweep_params["fixed.gd_epochs"] == "300" and sweep_params["cells"] == "4"
        sweep_metrics = {m["key"]: m["value"] for m in summary["metrics"]}
        assert sweep_metrics["cells_done"] == 4 and sweep_metrics["cells_failed"] == 0 and sweep_metrics["probes_run"] > 0

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            chromium = browser(p)
            page = chromium.new_page(viewport={"width": 2200, "height": 900})
            page.add_init_script(QUIET_ASSISTANT)
            page.goto(url)
            page.get_by_text("min_width", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("num_facts", exact=True).first.wait_for(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-runs.png"))
            header = page.inner_text("body")
            for column in ("Parameters", "Metrics", "method", "d", "num_facts", "min_width", "params"):
                assert re.search(rf"(^|\n){re.escape(column)}(\n|$)", header), f"no column {column!r}"
            assert "hebbian_whitened num_facts=16 seed=0" in header  # readable, unique run names
            page.evaluate("document.querySelector('input[value=CHART]').click()")  # the saved chart cards
            page.get_by_text("Parallel Coordinates").first.wait_for(timeout=30_000)
            page.get_by_text("num_facts vs. min_width").first.wait_for(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-charts.png"))

            fresh = chromium.new_page(viewport={"width": 1600, "height": 1000})  # no stored workflow choice
            fresh.add_init_script(QUIET_ASSISTANT)
            fresh.goto(links[2])
            fresh.get_by_text("Model metrics", exact=True).first.wait_for(timeout=60_000)
            fresh.get_by_text("grid.method", exact=True).first.wait_for(timeout=30_000)
            run_page = fresh.inner_text("body")
            assert "Observability" not in run_page and "Evaluation runs" not in run_page  # not the GenAI menus
            fresh.screenshot(path=str(ARTIFACTS / "mlflow-sweep-run.png"))
            fresh.goto(dashboard.run_url(base, eid, gd["info"]["run_id"]))
            fresh.get_by_text("gd_lr", exact=True).first.wait_for(timeout=60_000)
            cell_page = fresh.inner_text("body")
            assert gd["info"]["run_name"] in cell_page and "spike_on" not in cell_page
            fresh.screenshot(path=str(ARTIFACTS / "mlflow-cell-run.png"))

            fresh.goto(links[2].replace("?", "/artifacts?"))
            fresh.get_by_text("report", exact=True).first.click(timeout=60_000)
            fresh.get_by_text("dash.md", exact=True).first.wait_for(timeout=30_000)
            text = fresh.inner_text("body")
            fresh.screenshot(path=str(ARTIFACTS / "dashboard-artifacts.png"))
            fresh.get_by_text("dash.html", exact=True).first.click(timeout=30_000)
            pictures = fresh.frame_locator("iframe").first.locator("img")  # the report renders in a frame
            pictures.nth(1).wait_for(timeout=30_000)
            shown = []
            for _ in range(40):
                shown = pictures.evaluate_all("images => images.map(i => i.complete ? i.naturalWidth : 0)")
                if all(shown):
                    break
                time.sleep(0.5)
            fresh.screenshot(path=str(ARTIFACTS / "mlflow-sweep-report.png"))
            assert len(shown) >= 2 and all(width > 100 for width in shown), shown  # figures, not link text
            chromium.close()
        assert "dash-facts_vs_params.png" in text and "dash-facts_vs_params.pdf" in text
        assert "sweep.resolved.yaml" in text and "charts" in text

        before = len(runs)
        assert main(["run", str(path)]) == 0  # a no-op resume
        capsys.readouterr()
        after = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [eid], "max_results": 100})["runs"]
        assert len(after) == before
    finally:
        stop(process)
    assert not listening(port)


def test_ui_on_a_busy_port_is_one_line_and_sigterm_leaves_nothing_listening(tmp_path):
    port = free_port()
    (tmp_path / "results").mkdir()  # `ui --root` of a folder that does not exist is refused
    process, _ = start_ui(tmp_path / "results", port)
    try:
        busy = subprocess.run([sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(tmp_path / "results"),
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 1 and busy.stdout == ""
        assert busy.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        assert listening(port)
        process.send_signal(signal.SIGTERM)  # the ui process only, as `kill PID` would
        process.wait(timeout=30)
    finally:
        stop(process)
    deadline = time.monotonic() + 20
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not listening(port), "the MLflow server outlived `factsweep ui`"


@pytest.mark.parametrize("content", [b"not a database at all, just text", b""])
def test_ui_on_a_damaged_store_is_one_line(tmp_path, content):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlflow.db").write_bytes(content + b"\0" * 64)
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "ui", "--root", str(tmp_path / "results"),
                           "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "is not an SQLite database" in done.stderr
