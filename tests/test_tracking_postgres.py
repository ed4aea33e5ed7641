"""Lab mode end to end: the record on an object store and MLflow through a real `mlflow server` whose
backend is a real PostgreSQL and whose artifacts are proxied (the driver never writes the artifact
store itself). A server that is down costs a sweep nothing: tests/test_tracking_server.py."""
from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG
from servers import MlflowServer, PostgresServer, free_port, mlflow_server_command, postgres_bin

pytestmark = [pytest.mark.slow,  # real servers
              pytest.mark.skipif(postgres_bin() is None, reason="needs Debian's postgresql (make dev installs it)")]

SWEEP = """
name: lab
experiment: synthetic
fixed: {{num_probes: 2}}
grid: {{seed: [0, 1, 2]}}
tracking: {{uri: "{uri}"}}
storage: {{root: '{root}'}}
"""


@pytest.fixture
def postgres():
    pytest.importorskip("psycopg2", reason="PostgreSQL's driver (the dev extra) for MLflow's backend")
    server = PostgresServer(free_port()).wait()
    yield server
    server.stop()


def test_lab_mode_object_store_and_mlflow_server_on_postgres(object_store, postgres, tmp_path):
    port = free_port()
    artifacts = tmp_path / "artifacts"
    server = MlflowServer(tmp_path, port, command=mlflow_server_command(postgres.uri, artifacts, port))
    try:
        server.wait(timeout=180)
        path = tmp_path / "lab.yaml"
        path.write_text(SWEEP.format(uri=server.url, root=object_store.root("lab")))
        spec = load_spec(path)
        report = run_sweep(spec, progress=False, executor="inline")
        assert report.cells_done == 3 and report.tracking_ok
        cells = Store(spec.results_root).load("cells", "lab")
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("lab")
        runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell'")
        assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(cells["cell_id"])
        assert all(r.data.metrics["num_ok"] == 2 for r in runs)
        # Artifacts went through the server into its destination (mlflow-artifacts:/...), not to a client path.
        sweep_run = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")[0]
        assert sweep_run.info.artifact_uri.startswith("mlflow-artifacts:/")
        assert (artifacts / experiment.experiment_id / sweep_run.info.run_id / "artifacts" / "sweep.resolved.yaml").exists()
        import psycopg2
        with psycopg2.connect(host="127.0.0.1", port=postgres.port, user="postgres", dbname="mlflow") as db:
            with db.cursor() as cursor:
                cursor.execute("select count(*) from runs where lifecycle_stage = 'active'")
                assert cursor.fetchone()[0] == 4  # 3 cell runs and the sweep run, in PostgreSQL
    finally:
        server.stop()
