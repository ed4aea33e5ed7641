"""MLflow as a view of the Parquet record, laid out as a sweep dashboard.

Experiment = sweep. One *sweep run* per scope (``orchestrator.scope``: the file itself, or the file
with overrides that change its cells, tagged ``factsweep.scope``), reused by every invocation of that
scope (tags name the latest invocation, its overrides, profile and code version; artifacts hold the
resolved sweep file, the report and its figures). One *cell run* per finished cell under it, named by the parameters that
tell the cells apart, ending with its seed: params = the parts of the cell's config that apply to it,
metrics = its results rounded for reading (``orchestrator.dashboard``; so the runs table shows them as
columns), and the probe trajectory as one metric against its probe parameter (accuracy
against width: step = width). The experiment opens on MLflow's model-training pages with a shared
view of the cell runs (``orchestrator.dashboard``).

Cell runs carry their cell id as a tag and are only created for cells MLflow does not have yet
(checked again right before each one is created), so resuming, re-running or ``mlflow-sync`` never
duplicates a run, and a no-op resume creates no run at all. Nothing MLflow does can stop a sweep:
opening the store, a corrupt, locked or half-migrated database, an outage or a full disk each give
one warning line, and the sweep goes on; a later sync restores the view from Parquet. MLflow's own
log lines are kept out of the terminal.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sqlite3
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import yaml

from orchestrator import dashboard, registry
from orchestrator.interrupts import uninterrupted
from orchestrator.provenance import code_version
from orchestrator.redact import redact, server_uri

log = logging.getLogger("factsweep")

CELL_TAG = "factsweep.cell_id"
SWEEP_TAG = "factsweep.sweep"
SCOPE_TAG = "factsweep.scope"  # the report name of the cells a sweep run covers (orchestrator.scope)
KIND_TAG = "factsweep.kind"


def default_uri(results_root: str | Path) -> str | None:
    """sqlite beside a local results folder; None for an object-store root (no sqlite file is made there)."""
    from orchestrator.location import BadRoot, local_problem
    if problem := local_problem(results_root):
        raise BadRoot(f"storage.root: {problem}")
    if "://" in str(results_root):
        return None
    return sqlite_uri(Path(results_root).resolve() / "mlflow.db")


def sqlite_uri(path: Path) -> str:
    """``sqlite:///PATH`` with ``%`` and ``?`` quoted (SQLAlchemy reads ``?`` as options, ``%41`` as ``A``);
    any other path gives the same URI as before."""
    return "sqlite:///" + str(path).replace("%", "%25").replace("?", "%3F")


def _mlflow_opening(uri: str):
    """MLflow makes the parent folder of a sqlite URI's raw, still quoted path before it opens the file:
    for a root with ``%`` or ``?`` a stray empty folder beside it, removed here once MLflow has made it."""
    raw = Path(uri[len("sqlite:///"):].split("?", 1)[0]).parent if uri.startswith("sqlite:///") else None
    stray = raw is not None and raw != (sqlite_path(uri) or raw).parent and not raw.exists()

    def tidy():
        if stray:
            with contextlib.suppress(OSError):
                raw.rmdir()  # only an empty folder: never anything of the user's
    return tidy


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other stores), unquoted as SQLAlchemy does."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
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
    uri = sqlite_uri(tmp)
    try:
        tmp.touch(exist_ok=False)  # a folder sqlite cannot write fails here, not after MLflow's ~100 s of retries
        from mlflow.tracking import MlflowClient
        tidy = _mlflow_opening(uri)
        try:
            client = MlflowClient(tracking_uri=uri)  # builds the schema, with MLflow's "Default" experiment
            retire_default(client)
        finally:
            tidy()
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


def retire_default(client) -> None:
    """Delete MLflow's "Default" experiment while it holds no run: factsweep logs every sweep to its
    own experiment, and an empty "Default" at the top of the list is only noise. (Deleted, not
    dropped: the UI lists active experiments, and MLflow does not create it again.)"""
    default = client.get_experiment("0")
    if default is not None and default.lifecycle_stage == "active" and not client.search_runs(
            ["0"], max_results=1, run_view_type=3):
        client.delete_experiment("0")


def _check_opens(path: Path) -> None:
    """Open and read an existing database with sqlite itself: a file sqlite cannot open fails here at
    once, where MLflow would retry creating its engine for about 100 s first."""
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=20)
    try:
        connection.execute("select count(*) from sqlite_master").fetchone()
    finally:
        connection.close()


def own_artifacts(database: Path, artifacts: str) -> None:
    """A results folder owns its artifacts: MLflow records each experiment's and run's artifact location
    as an absolute URI, so in a copied or moved folder (its ``mlflow.db`` with it) locations that end in
    another folder's ``/mlartifacts`` are rewritten to this one's, and new artifacts land inside it."""
    with contextlib.closing(sqlite3.connect(database, timeout=20)) as connection, connection:
        moved = connection.execute("select experiment_id, artifact_location from experiments where artifact_location "
                                   "like 'file:%/mlartifacts' and artifact_location != ?", (artifacts,)).fetchall()
        for experiment, old in moved:
            connection.execute("update experiments set artifact_location = ? where experiment_id = ?", (artifacts, experiment))
            connection.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) where experiment_id = ? "
                               "and substr(artifact_uri, 1, ?) = ?", (artifacts, len(old) + 1, experiment, len(old) + 1, old + "/"))
            runs = connection.execute("select run_uuid from runs where experiment_id = ?", (experiment,)).fetchall()
            _forget_artifact_repos([run for (run,) in runs])


def _forget_artifact_repos(run_ids: list[str]) -> None:
    """Drop MLflow's per-process cache of these runs' artifact stores (keyed by run id, with the old location)."""
    try:
        from mlflow.tracking._tracking_service import utils
        cache = utils._artifact_repos_cache
    except (ImportError, AttributeError):
        return
    for run in run_ids:
        cache.pop(run, None)


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

    def __init__(self, uri: str, experiment: str, results_root: str | Path, sweep: str | None = None,
                 scope: str | None = None):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # An unreachable server should cost seconds, not MLflow's default minutes of back-off.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.uri, self.experiment_name = server_uri(uri), experiment  # a server's credentials: from the environment
        # Beside the results; with an object-store root, beside a sqlite file (a server keeps its own).
        database = sqlite_path(uri or "")
        local = Path(results_root) if "://" not in str(results_root) else database.parent if database else None
        self.artifacts = None if local is None else (local.resolve() / "mlartifacts").as_uri()
        # A database inside the results folder moves with it, and so must its artifact locations.
        self.owned = database is not None and local is not None and database.parent == local.resolve()
        self.failed = False
        self.sweep = sweep or experiment
        self.scope = scope or self.sweep  # whose sweep run: a file with overrides that change its cells has its own
        self.parent_id: str | None = None  # the sweep run
        self.names: set[str] = set()  # run names the experiment's cell runs already have
        self._experiment_id: str | None = None
        if uri is None:  # an object-store root with no tracking URI (only a report by name): no view to update
            self.failed, self.client = True, None
            return
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
                if self.owned:
                    own_artifacts(database, self.artifacts)
            tidy = _mlflow_opening(self.uri)
            try:
                client = MlflowClient(tracking_uri=self.uri)
                client.search_experiments(max_results=1)
                if database is not None:  # a shared tracking server's experiments are not ours to tidy
                    retire_default(client)
            finally:
                tidy()
        except Exception as e:
            if database is not None and database.exists():
                _dispose(self.uri)  # so that a later tracker in this process opens the file afresh
                raise Unusable(_reason(e)) from None
            raise
        return client

    def _guard(self, what: str, fn, *args):
        if self.failed:
            return None
        # A stop signal waits for a write to the local sqlite store to end (a server's calls stay interruptible).
        with uninterrupted() if sqlite_path(self.uri) is not None else contextlib.nullcontext():
            return self._call(what, fn, *args)

    def _call(self, what: str, fn, *args):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args)
        except Exception as e:  # noqa: BLE001 - any tracking failure must not stop the sweep
            self.failed = True
            if isinstance(e, Unusable):
                log.warning(redact(f"MLflow database {sqlite_path(self.uri)} cannot be used ({e}); the sweep goes on "
                                   "and Parquet keeps every result; if it stays so, move the file aside and run "
                                   "`factsweep mlflow-sync` to rebuild the view."))
            else:
                log.warning(redact(f"MLflow tracking at {self.uri} failed while {what} ({_reason(e)}); the sweep "
                                   "goes on and Parquet keeps every result; run `factsweep mlflow-sync` later to "
                                   "restore the view."))
            return None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None and found.lifecycle_stage == "deleted":  # deleted in the UI: the view comes back
                self.client.restore_experiment(found.experiment_id)
            local = not self.uri.startswith(("http://", "https://"))  # a server keeps its own artifact store
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifacts if local and self.artifacts else None)
        return self._experiment_id

    def show(self, params: list[str], metrics: list[str]) -> None:
        """Open the experiment on the model-training pages, with the cell runs' table as its shared view."""
        def go():
            eid = self.experiment_id()
            self.client.set_experiment_tag(eid, dashboard.KIND_TAG, dashboard.MODEL_TRAINING)
            self.client.set_experiment_tag(eid, dashboard.SHARED_VIEW_TAG, dashboard.view_state(params, metrics))
        self._guard("setting up the dashboard", go)

    def _scope_runs(self, condition: str = "") -> list:
        """This scope's sweep runs (a run from before scopes, which has no scope tag, is the plain file's)."""
        scoped = f" and tags.`{SCOPE_TAG}` = '{self.scope}'" if self.scope != self.sweep else ""
        found = self.client.search_runs([self.experiment_id()], max_results=1000, filter_string=(
            f"tags.`{KIND_TAG}` = 'sweep' and tags.`{SWEEP_TAG}` = '{self.sweep}'{scoped}{condition}"))
        return [r for r in found if r.data.tags.get(SCOPE_TAG, self.sweep) == self.scope]

    def sweep_run(self) -> str | None:
        """The scope's one sweep run (created on first use), under which its new cell runs sit."""
        def go():
            if self.parent_id is None:
                found = self._scope_runs()
                self.parent_id = found[0].info.run_id if found else self.client.create_run(
                    self.experiment_id(), run_name=self.scope,
                    tags={KIND_TAG: "sweep", SWEEP_TAG: self.sweep, SCOPE_TAG: self.scope,
                          "mlflow.note.content": "factsweep sweep run: the cells are its child runs; the report, "
                                                 "figures and resolved sweep file are its artifacts"}).info.run_id
            return self.parent_id
        return self._guard("finding the sweep run", go)

    def close_stale(self) -> None:
        """The scope's sweep run left RUNNING by a killed driver is marked KILLED (the locks of the scope's
        cells, held by the caller, prove no other driver of it is alive; drivers of other cells have
        other scopes, and their own sweep runs)."""
        def go():
            for run in self._scope_runs(" and attributes.status = 'RUNNING'"):
                self.client.set_terminated(run.info.run_id, "KILLED")
        self._guard("closing a stale sweep run", go)

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

    def log_report(self, paths: list[Path], cells: pd.DataFrame | None = None, varying: tuple[str, ...] = ()) -> None:
        """The report and its figures as artifacts of the sweep run (a newer report replaces them), the
        report also as one HTML page with its figures inline (MLflow shows markdown as text), and the
        charts of the cells (``orchestrator.scaling_chart``, ``orchestrator.parallel``) under ``charts/``."""
        import tempfile

        from orchestrator import parallel, report_html, scaling_chart

        def go():
            run_id = self.sweep_run()
            if run_id is None:
                return
            for path in paths:
                self.client.log_artifact(run_id, str(path), "report")
            with tempfile.TemporaryDirectory() as folder:
                for path in (p for p in paths if p.suffix == ".md"):
                    page = Path(folder) / f"{path.stem}.html"
                    page.write_text(report_html.render(path))
                    self.client.log_artifact(run_id, str(page), "report")
                if cells is not None and len(cells):
                    drawn = [scaling_chart.draw(cells, varying, Path(folder) / f"{self.sweep}-by_num_facts.png"),
                             parallel.draw(cells, varying, Path(folder) / f"{self.sweep}-parallel.png")]
                    for chart in filter(None, drawn):
                        self.client.log_artifact(run_id, str(chart), "charts")
        self._guard("logging the report", go)

    def describe(self, spec, counts: dict | None = None) -> None:
        """The sweep run's own parameters (the file's grid, zip, seeds, search and fixed recipe, as
        ``grid.d`` = ``[8, 16]``) and, after an invocation that ran, its summary metrics (cells done,
        failed, probes, seconds). MLflow never changes a logged parameter: a value that differs from
        the sweep run's (another invocation's overrides) is recorded as the tag ``factsweep.now.<key>``."""
        def go():
            from mlflow.entities import Metric, Param, RunTag
            run_id = self.sweep_run()
            if run_id is None:
                return
            have = self.client.get_run(run_id).data.params
            wanted = sweep_params(spec)
            params = [Param(k, v) for k, v in wanted.items() if k not in have]
            tags = [RunTag(f"factsweep.now.{k}", v) for k, v in wanted.items() if k in have and have[k] != v]
            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, 0) for k, v in (counts or {}).items() if _scalar(v) is not None]
            while params or metrics or tags:
                self.client.log_batch(run_id, metrics=metrics[:900], params=params[:100], tags=tags[:100])
                params, metrics, tags = params[100:], metrics[900:], tags[100:]
        self._guard("describing the sweep run", go)

    def logged_cells(self, stale_among: set[str] | frozenset[str] | None = None) -> set[str] | None:
        """Cell ids with a finished cell run (None if MLflow cannot be reached); also learns the run
        names in use.

        A cell run left unfinished by a killed driver may lack its metrics: it is deleted here so
        the cell is logged again, whole; only among ``stale_among`` (the cells whose locks the caller
        holds; None: all) since a driver of other cells may be logging one of its own right now.
        """
        def go():
            found, token = set(), None
            while True:
                page = self.client.search_runs(  # this sweep's cells: another may share the experiment
                    [self.experiment_id()], max_results=5000, page_token=token,
                    filter_string=f"tags.`{KIND_TAG}` = 'cell' and tags.`{SWEEP_TAG}` = '{self.sweep}'")
                for run in page:
                    if run.info.status == "FINISHED":
                        found.add(run.data.tags.get(CELL_TAG))
                        self.names.add(run.info.run_name)
                    elif stale_among is None or run.data.tags.get(CELL_TAG) in stale_among:
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
        if self.client.search_runs([self.experiment_id()], max_results=1, filter_string=(
                f"tags.`{CELL_TAG}` = '{cell['cell_id']}' and tags.`{SWEEP_TAG}` = '{sweep}' and "
                "attributes.status = 'FINISHED'")):
            return  # already logged (by another route since logged_cells was read): never twice
        tags = {KIND_TAG: "cell", CELL_TAG: cell["cell_id"], SWEEP_TAG: sweep, "code_version": cell.get("code_version")
                or code_version(), "factsweep.invocation": cell.get("invocation_id") or ""}
        parent = self.sweep_run()
        if parent:
            tags["mlflow.parentRunId"] = parent
        name = dashboard.run_name(config, cell.get("name_keys", []), self.names, cell["cell_id"])
        run = self.client.create_run(self.experiment_id(), run_name=name, tags=tags)
        self.names.add(name)
        now = int(time.time() * 1000)
        metrics = [Metric(k, dashboard.rounded(v), now, 0)
                   for k, v in ((k, _scalar(v)) for k, v in cell["summary"].items()) if v is not None]
        metrics += _trajectory(probes, cell.get("trajectory", ()), now)
        params = registry.get(cell["experiment"]).params if cell.get("experiment") else {}
        shown = dashboard.shown_params(config, cell.get("varying", ()), params)
        params = [Param(k, dashboard.display(v)[:6000]) for k, v in shown.items()]
        while metrics or params:  # MLflow caps one batch at 1000 entities, 100 of them params
            self.client.log_batch(run.info.run_id, metrics=metrics[:900], params=params[:100])
            metrics, params = metrics[900:], params[100:]
        self.client.set_terminated(run.info.run_id, "FINISHED")


def sweep_params(spec) -> dict[str, str]:
    """What the sweep file asks for, as the sweep run's parameters: ``experiment``, ``cells``, and one
    per entry of its grid, zip, seeds, search and fixed (the recipe) blocks, overrides applied."""
    raw = spec.raw or {}
    out = {"experiment": spec.experiment.name, "cells": str(len(spec.cells))}
    for block in ("grid", "zip", "search", "fixed"):
        for key, value in (raw.get(block) or {}).items():
            if isinstance(value, list):
                text = "[" + ", ".join(dashboard.display(v) for v in value) + "]"
            else:
                text = dashboard.display(value)
            out[f"{block}.{key}"] = text[:6000]
    if raw.get("seeds") is not None:
        out["seeds"] = json.dumps(raw["seeds"])[:6000]
    return out


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
    return [Metric(f"{y}_by_{x}", dashboard.rounded(float(v)), now, int(k) if integral else i)
            for i, (k, v) in enumerate(zip(rows[x], rows[y])) if _scalar(v) is not None]
