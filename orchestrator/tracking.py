"""MLflow as a view of the Parquet record, laid out as a sweep dashboard.

Experiment = sweep. One *sweep run* per sweep, reused by every invocation (tags name the latest
invocation, its overrides, profile and code version; artifacts hold the resolved sweep file, the
report and its figures). One *cell run* per finished cell under it, named by the parameters that
tell the cells apart: params = the cell's config, metrics = its results (so the runs table shows
them as columns), and the probe trajectory as one metric against its probe parameter (accuracy
against width: step = width). The experiment opens on MLflow's model-training pages with a shared
view of the cell runs (``orchestrator.dashboard``).

Cell runs carry their cell id as a tag and are only created for cells MLflow does not have yet,
so resuming, re-running or ``mlflow-sync`` never duplicates a run, and a no-op resume creates no
run at all. A tracking outage warns once and the sweep goes on; a later sync restores the view.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import pandas as pd
import yaml

from orchestrator import dashboard
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

    def __init__(self, uri: str, experiment: str, results_root: str | Path, sweep: str | None = None):
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
        self.sweep = sweep or experiment
        self.parent_id: str | None = None  # the sweep run
        self.names: set[str] = set()  # run names the experiment's cell runs already have
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
            local = not self.uri.startswith(("http://", "https://"))  # a server keeps its own artifact store
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifacts if local else None)
        return self._experiment_id

    def show(self, params: list[str], metrics: list[str]) -> None:
        """Open the experiment on the model-training pages, with the cell runs' table as its shared view."""
        def go():
            eid = self.experiment_id()
            self.client.set_experiment_tag(eid, dashboard.KIND_TAG, dashboard.MODEL_TRAINING)
            self.client.set_experiment_tag(eid, dashboard.SHARED_VIEW_TAG, dashboard.view_state(params, metrics))
        self._guard("setting up the dashboard", go)

    def sweep_run(self) -> str | None:
        """The sweep's one run (created on first use), under which every cell run sits."""
        def go():
            if self.parent_id is None:
                found = self.client.search_runs(
                    [self.experiment_id()], max_results=1,
                    filter_string=f"tags.`{KIND_TAG}` = 'sweep' and tags.`{SWEEP_TAG}` = '{self.sweep}'")
                self.parent_id = found[0].info.run_id if found else self.client.create_run(
                    self.experiment_id(), run_name=self.sweep,
                    tags={KIND_TAG: "sweep", SWEEP_TAG: self.sweep,
                          "mlflow.note.content": "factsweep sweep run: the cells are its child runs; the report, "
                                                 "figures and resolved sweep file are its artifacts"}).info.run_id
            return self.parent_id
        return self._guard("finding the sweep run", go)

    def start(self, spec, invocation: dict) -> None:
        """An invocation that has work: mark the sweep run running and record who runs it and how."""
        def go():
            from mlflow.entities import RunTag
            run_id = self.sweep_run()
            if run_id is None:
                return
            tags = {"factsweep.invocation": invocation["invocation_id"], "factsweep.overrides": invocation["overrides"],
                    "factsweep.profile": str(invocation["profile"]), "factsweep.source": invocation["source"],
                    "factsweep.sweep_file_sha256": invocation["file_sha256"], "code_version": invocation["code_version"],
                    "factsweep.started_at": invocation["started_at"]}
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])
            self.client.update_run(run_id, status="RUNNING")
            self._artifact_text(run_id, "sweep.resolved.yaml", yaml.safe_dump(spec.raw, sort_keys=False))
            self._artifact_text(run_id, "invocation.json", json.dumps(invocation, indent=2, default=str))
        self._guard("opening the sweep run", go)

    def finish(self, status: str = "FINISHED") -> None:
        if self.parent_id:
            self._guard("closing the sweep run", lambda: self.client.set_terminated(self.parent_id, status))

    def _artifact_text(self, run_id: str, name: str, text: str) -> None:
        import tempfile
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_text(text)
            self.client.log_artifact(run_id, str(path))

    def log_report(self, paths: list[Path]) -> None:
        """The report and its figures as artifacts of the sweep run (a newer report replaces them)."""
        def go():
            run_id = self.sweep_run()
            for path in paths if run_id else ():
                self.client.log_artifact(run_id, str(path), "report")
        self._guard("logging the report", go)

    def logged_cells(self) -> set[str] | None:
        """Cell ids with a finished cell run (None if MLflow cannot be reached); also learns the run
        names in use.

        A cell run left unfinished by a killed driver may lack its metrics: it is deleted here so
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
                        self.names.add(run.info.run_name)
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
        from mlflow.entities import Metric, Param

        config = cell["config"]
        tags = {KIND_TAG: "cell", CELL_TAG: cell["cell_id"], SWEEP_TAG: sweep, "code_version": cell.get("code_version")
                or code_version(), "factsweep.invocation": cell.get("invocation_id") or ""}
        parent = self.sweep_run()
        if parent:
            tags["mlflow.parentRunId"] = parent
        name = dashboard.run_name(config, cell.get("name_keys", []), self.names, cell["cell_id"])
        run = self.client.create_run(self.experiment_id(), run_name=name, tags=tags)
        self.names.add(name)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in ((k, _scalar(v)) for k, v in cell["summary"].items()) if v is not None]
        metrics += _trajectory(probes, cell.get("trajectory", ()), now)
        params = [Param(k, str(v)[:6000]) for k, v in config.items()]
        while metrics or params:  # MLflow caps one batch at 1000 entities, 100 of them params
            self.client.log_batch(run.info.run_id, metrics=metrics[:900], params=params[:100])
            metrics, params = metrics[900:], params[100:]
        self.client.set_terminated(run.info.run_id, "FINISHED")


def _trajectory(probes: pd.DataFrame, trajectory: tuple, now: int) -> list:
    """The probes as one metric against the probe parameter: ``accuracy_by_width`` at step = width,
    so MLflow's chart of it reads as accuracy against width (integral x only; else in recorded order)."""
    from mlflow.entities import Metric
    if len(trajectory) != 2 or not len(probes) or any(c not in probes for c in trajectory):
        return []
    x, y = trajectory
    rows = probes[[x, y]].dropna()
    integral = len(rows) and all(float(v).is_integer() for v in rows[x])
    rows = rows.sort_values(x, kind="stable") if integral else rows.reset_index(drop=True)
    return [Metric(f"{y}_by_{x}", float(v), now, int(k) if integral else i)
            for i, (k, v) in enumerate(zip(rows[x], rows[y])) if _scalar(v) is not None]
