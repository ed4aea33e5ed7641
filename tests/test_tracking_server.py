"""MLflow through a real tracking server: the same view as sqlite, and an outage costs no result."""
from __future__ import annotations

import pytest

import logging

from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG
from servers import free_port

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: 3, rounds: 3}}
grid: {{seed: [0, 1, 2, 3]}}
tracking: {{uri: "{uri}"}}
storage: {{root: {root}}}
"""


def cell_runs(uri: str, name: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    return [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell'")


def test_sweep_logs_to_a_tracking_server(ray_session, tiny_sweep, mlflow_server):
    server = mlflow_server()
    spec = load_spec(tiny_sweep("served"), [f"tracking.uri={server.url}"])
    run_sweep(spec, progress=False)
    cells = Store(spec.results_root).load("cells", spec.name)
    runs = {r.data.tags[CELL_TAG]: r for r in cell_runs(server.url, spec.name)}
    assert set(runs) == set(cells["cell_id"])
    for row in cells.to_dict("records"):
        assert runs[row["cell_id"]].data.metrics["min_width"] == row["min_width"]


def test_outage_loses_nothing_and_sync_restores_the_view(ray_session, tmp_path, mlflow_server, caplog, capsys):
    port = free_port()
    path = tmp_path / "outage.yaml"
    path.write_text(SYNTHETIC.format(name="outage", uri=f"http://127.0.0.1:{port}", root=tmp_path / "results"))
    with caplog.at_level(logging.WARNING, logger="factsweep"):
        report = run_sweep(load_spec(path), progress=False)
    assert report.cells_done == 4 and report.probes_run == 12
    warnings = [r for r in caplog.records if "mlflow-sync" in r.getMessage()]
    assert len(warnings) == 1, "an outage warns exactly once"
    assert len(Store(tmp_path / "results").load("cells", "outage")) == 4

    server = mlflow_server(port)
    assert main(["mlflow-sync", str(path)]) == 0
    assert "4 cells logged" in capsys.readouterr().out
    runs = cell_runs(server.url, "outage")
    assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(Store(tmp_path / "results").load("cells", "outage")["cell_id"])
    assert all(r.data.metrics["num_ok"] == 3 for r in runs)
    assert all(len(MlflowClient(server.url).get_metric_history(r.info.run_id, "value_by_index")) == 3 for r in runs)
    # Syncing again, or re-running the finished sweep, adds no duplicate.
    assert main(["mlflow-sync", str(path)]) == 0
    assert run_sweep(load_spec(path), progress=False).probes_run == 0
    assert len(cell_runs(server.url, "outage")) == 4
