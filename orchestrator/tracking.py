"""MLflow as a view of the Parquet record: experiment = sweep, a parent run per invocation, a child
run per finished cell (params = its config, metrics = its summary, the probe trajectory as steps).

Child runs carry their cell id as a tag and are only created for cells MLflow does not have yet
(checked again right before each one is created), so resuming, re-running or ``mlflow-sync`` never
duplicates a run. Nothing MLflow does can stop a sweep: opening the store, a corrupt, locked or
half-migrated database, an outage or a full disk each give one warning line, and the sweep goes on;
a later sync restores the view from Parquet. MLflow's own log lines are kept out of the terminal.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import sqlite3
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import pandas as pd

log = logging.getLogger("factsweep")

CELL_TAG = "factsweep.cell_id"
SWEEP_TAG = "factsweep.sweep"
KIND_TAG = "factsweep.kind"


def default_uri(results_root: str | Path) -> str:
    return f"sqlite:///{Path(results_root).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def create_sqlite_store(path: Path) -> None:
    """Create MLflow's database at ``path`` whole or not at all.

    MLflow migrates a new database in dozens of steps and cannot resume a migration that a crash or
    a full disk interrupted, and two first runs at once both migrate the same file (``duplicate
    column name``). So the schema is built in a private temporary file next to ``path``, synced, and
    hard-linked into place, which fails if someone else's database got there first (then theirs is used).
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for stale in path.parent.glob(f".{path.name}.{host}.*.tmp"):  # left by a driver killed while creating
        pid = stale.name.split(".")[-3]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    uri = f"sqlite:///{tmp}"
    try:
        tmp.touch(exist_ok=False)  # a folder sqlite cannot write fails here, not after MLflow's ~100 s of retries
        from mlflow.tracking import MlflowClient
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # builds the schema
        _dispose(uri)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        _dispose(uri)
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _check_opens(path: Path) -> None:
    """Open and read an existing database with sqlite itself: a file sqlite cannot open fails here at
    once, where MLflow would retry creating its engine for about 100 s first."""
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=20)
    try:
        connection.execute("select count(*) from sqlite_master").fetchone()
    finally:
        connection.close()


def _dispose(uri: str) -> None:
    """Close MLflow's cached connections to ``uri`` (a temporary database about to be renamed or removed)."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
    except (ImportError, AttributeError):
        return
    if engine is not None:
        engine.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def code_version() -> str:
    """The git commit of the code that ran, when it is a checkout; else the package version."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("factsweep")
    except PackageNotFoundError:
        return "unknown"


def _scalar(value):
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _reason(error: BaseException) -> str:
    """One line for an error: its root cause (MLflow wraps the database's own message in notes)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"[:300]


class Unusable(Exception):
    """An existing MLflow database that cannot be opened (corrupt, half-migrated, locked)."""


class Tracker:
    """Logs finished cells to MLflow; every call is best-effort and never stops a sweep."""

    def __init__(self, uri: str, experiment: str, results_root: str | Path):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # An unreachable server should cost seconds, not MLflow's default minutes of back-off.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.uri, self.experiment_name = uri, experiment
        self.artifacts = (Path(results_root).resolve() / "mlartifacts").as_uri()
        self.failed = False
        self.parent_id: str | None = None
        self._experiment_id: str | None = None
        self.client = self._guard("opening the tracking store", self._open)

    def _open(self):
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic", "sqlalchemy"):  # their messages become our one warning line
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        database = sqlite_path(self.uri)
        if database is not None:
            create_sqlite_store(database)
        try:
            if database is not None:
                _check_opens(database)
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)
        except Exception as e:
            if database is not None and database.exists():
                _dispose(self.uri)  # so that a later tracker in this process opens the file afresh
                raise Unusable(_reason(e)) from None
            raise
        return client

    def _guard(self, what: str, fn, *args):
        if self.failed:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args)
        except Exception as e:  # noqa: BLE001 - any tracking failure must not stop the sweep
            self.failed = True
            if isinstance(e, Unusable):
                log.warning("MLflow database %s cannot be used (%s); the sweep goes on and Parquet keeps every "
                            "result; if it stays so, move the file aside and run `factsweep mlflow-sync` to "
                            "rebuild the view.", sqlite_path(self.uri), e)
            else:
                log.warning("MLflow tracking at %s failed while %s (%s); the sweep goes on and Parquet keeps "
                            "every result; run `factsweep mlflow-sync` later to restore the view.",
                            self.uri, what, _reason(e))
            return None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifacts)
        return self._experiment_id

    def start(self, sweep: str, info: dict) -> None:
        """Open this invocation's parent run, first closing as KILLED the parent runs of this sweep that
        a killed driver left RUNNING (the sweep's lock proves no other driver of it is alive)."""
        def go():
            from mlflow.entities import Param, RunTag
            stale = self.client.search_runs([self.experiment_id()], max_results=1000, filter_string=(
                f"tags.`{KIND_TAG}` = 'invocation' and tags.`{SWEEP_TAG}` = '{sweep}' and attributes.status = 'RUNNING'"))
            for run in stale:
                self.client.set_terminated(run.info.run_id, "KILLED")
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
        if self.client.search_runs([self.experiment_id()], max_results=1, filter_string=(
                f"tags.`{CELL_TAG}` = '{cell['cell_id']}' and attributes.status = 'FINISHED'")):
            return  # already logged (by another route since logged_cells was read): never twice
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
