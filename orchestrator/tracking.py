"""MLflow as a view of the Parquet record: experiment = sweep, a parent run per invocation, a child
run per finished cell (params = its config, metrics = its summary, the probe trajectory as steps).

Child runs carry their cell id as a tag and are only created for cells MLflow does not have yet,
so resuming, re-running or ``mlflow-sync`` never duplicates a run. A tracking outage warns once and
the sweep goes on; a later sync restores the view from Parquet.
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path

import pandas as pd

from orchestrator.provenance import code_version

log = logging.getLogger("factsweep")

CELL_TAG = "factsweep.cell_id"
SWEEP_TAG = "factsweep.sweep"
KIND_TAG = "factsweep.kind"


def default_uri(results_root: str | Path) -> str:
    return f"sqlite:///{Path(results_root).resolve() / 'mlflow.db'}"


def _scalar(value):
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Tracker:
    """Logs finished cells to MLflow; every call is best-effort and never stops a sweep."""

    def __init__(self, uri: str, experiment: str, results_root: str | Path):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # An unreachable server should cost seconds, not MLflow's default minutes of back-off.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri, self.experiment_name = uri, experiment
        self.client = MlflowClient(tracking_uri=uri)
        self.artifacts = (Path(results_root).resolve() / "mlartifacts").as_uri()
        self.failed = False
        self.parent_id: str | None = None
        self._experiment_id: str | None = None

    def _guard(self, what: str, fn, *args):
        if self.failed:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args)
        except Exception as e:  # noqa: BLE001 - any tracking failure must not stop the sweep
            self.failed = True
            log.warning("MLflow tracking at %s failed while %s (%s: %s); the sweep goes on and Parquet keeps "
                        "every result; run `factsweep mlflow-sync` later to restore the view.",
                        self.uri, what, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            return None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifacts)
        return self._experiment_id

    def start(self, sweep: str, info: dict) -> None:
        """Open this invocation's parent run."""
        def go():
            from mlflow.entities import Param, RunTag
            run = self.client.create_run(self.experiment_id(), run_name=f"{sweep}-{time.strftime('%Y%m%d-%H%M%S')}",
                                         tags={SWEEP_TAG: sweep, KIND_TAG: "invocation", "code_version": code_version()})
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in info.items()],
                                  tags=[RunTag("mlflow.note.content", f"factsweep run of sweep {sweep}")])
            self.parent_id = run.info.run_id
        self._guard("opening the parent run", go)

    def finish(self, status: str = "FINISHED") -> None:
        if self.parent_id:
            self._guard("closing the parent run", lambda: self.client.set_terminated(self.parent_id, status))

    def logged_cells(self) -> set[str] | None:
        """Cell ids with a finished child run (None if MLflow cannot be reached).

        A child run left unfinished by a killed driver may lack its metrics: it is deleted here so
        the cell is logged again, whole.
        """
        def go():
            found, token = set(), None
            while True:
                page = self.client.search_runs([self.experiment_id()], filter_string=f"tags.`{KIND_TAG}` = 'cell'",
                                               max_results=5000, page_token=token)
                for run in page:
                    if run.info.status == "FINISHED":
                        found.add(run.data.tags.get(CELL_TAG))
                    else:
                        self.client.delete_run(run.info.run_id)
                token = page.token
                if not token:
                    return found
        return self._guard("listing logged cells", go)

    def log_cell(self, sweep: str, cell: dict, probes: pd.DataFrame) -> None:
        """One child run for a finished cell, all in one ``log_batch``."""
        self._guard("logging a cell", self._log_cell, sweep, cell, probes)

    def _log_cell(self, sweep: str, cell: dict, probes: pd.DataFrame) -> None:
        from mlflow.entities import Metric, Param, RunTag

        config = cell["config"]
        tags = {KIND_TAG: "cell", CELL_TAG: cell["cell_id"], SWEEP_TAG: sweep, "code_version": code_version()}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id(), run_name=cell.get("run_name"), tags=tags)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in ((k, _scalar(v)) for k, v in cell["summary"].items()) if v is not None]
        if len(probes):  # in the order they were recorded
            for step, row in probes.reset_index(drop=True).iterrows():
                for column in cell.get("trajectory", ()):
                    value = _scalar(row.get(column))
                    if value is not None:
                        metrics.append(Metric(f"probe_{column}", value, now, int(step)))
        params = [Param(k, str(v)) for k, v in config.items()]
        self.client.log_batch(run.info.run_id, metrics=metrics[:900], params=params[:100])
        for start in range(900, len(metrics), 900):  # MLflow caps one batch at 1000 entities
            self.client.log_batch(run.info.run_id, metrics=metrics[start:start + 900])
        self.client.set_terminated(run.info.run_id, "FINISHED")
