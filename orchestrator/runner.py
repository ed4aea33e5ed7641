"""The driver: plan a sweep, hand its probes to an executor, record results as they complete, and
advance each cell's search.

Only the driver writes, and only while it holds the sweep's lease (``orchestrator.lease``). Each finished task is appended to
Parquet at once (a kill loses no finished result), then the cell's next probes are derived from its
records; a cell that is done gets its summary row and its MLflow cell run. In-flight work is bounded
and results are handled in completion order. Where probes run is the executor's business
(``orchestrator.executors``, chosen by name: Ray, this process, or this process raising for a debugger).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass

from orchestrator import cell_columns, executors
from orchestrator import plan as planning
from orchestrator.executors import Executor
from orchestrator.experiment import EARLY_STOP, is_set
from orchestrator.cells_lock import cell_labels
from orchestrator.lease import cells_lease
from orchestrator.interrupts import raise_or_defer
from orchestrator.progress import Progress
from orchestrator.provenance import finish_invocation, new_invocation
from orchestrator.scope import Scope
from orchestrator.spec import Spec, check_recorded_kind
from orchestrator.store import EPOCH, Store
from orchestrator.tracking import Tracker, default_uri


@dataclass
class RunReport:
    cells: int
    cells_done: int
    cells_failed: int
    probes_run: int
    probes_failed: int
    seconds: float
    tracking_ok: bool = True  # False once MLflow failed (and warned): nothing more is sent to it


def tracker_for(spec: Spec) -> Tracker:
    """The MLflow view of the file's scope: its own sweep run when its overrides change the cells."""
    return Tracker(spec.tracking_uri or default_uri(spec.results_root), spec.tracking_experiment or spec.name,
                   spec.results_root, spec.name, Scope.of_spec(spec).report_name)


def cell_row(spec: Spec, cell: planning.CellPlan, invocation: dict) -> dict:
    return {"cell_id": cell.cell_id, "experiment": spec.experiment.name, **cell.config, **cell.inputs,
            **spec.experiment.summarize(cell.config, cell.results), **_made_by(invocation)}


def _made_by(invocation: dict) -> dict:
    """The provenance every recorded row carries."""
    return {k: invocation[k] for k in cell_columns.PROVENANCE}


def record_finished_cells(spec: Spec, store: Store, plans: list[planning.CellPlan], invocation: dict) -> None:
    """Write the summary row of every finished cell that lacks one (a kill can fall in between)."""
    cells = store.load("cells", spec.name, missing_ok=True)
    have = set(cells["cell_id"]) if len(cells) else set()
    store.append("cells", spec.name, [cell_row(spec, c, invocation) for c in plans
                                      if c.state == planning.DONE and c.cell_id not in have])


def sync_tracking(spec: Spec, store: Store, tracker: Tracker) -> int:
    """Log every finished cell of the sweep file that MLflow lacks; returns how many were logged. The
    caller holds the file's cells (a run) or the whole sweep (mlflow-sync)."""
    scope = Scope.of_spec(spec)
    logged = tracker.logged_cells(stale_among=scope.cell_ids)
    if logged is None:
        return 0
    tracker.show(*cell_columns.dashboard(spec.experiment, spec.varying))
    cells, probes = scope.load(store, "cells"), scope.load(store, "probes")
    added = 0
    for row in cells.to_dict("records") if len(cells) else []:
        if row["cell_id"] in logged:
            continue
        mine = probes[(probes["cell_id"] == row["cell_id"]) & (probes["status"] == "ok")] if len(probes) else probes
        mine = mine.sort_values("recorded_at", kind="stable") if len(mine) else mine
        tracker.log_cell(spec.name, _tracked(spec, row), mine)
        added += not tracker.failed
    return added


def _tracked(spec: Spec, row: dict) -> dict:
    config, summary = cell_columns.split(spec.experiment, row)
    return {"cell_id": row["cell_id"], "config": config, "summary": summary,
            "name_keys": cell_columns.name_keys(spec.experiment, spec.varying), "varying": spec.varying,
            "experiment": spec.experiment.name, "trajectory": spec.experiment.reporting.trajectory,
            "invocation_id": row.get("invocation_id"),
            "code_version": row.get("code_version")}


def run_sweep(spec: Spec, *, retry_failed: bool = False, progress: bool | str | None = None,
              address: str | None = None, executor: str | Executor | None = None) -> RunReport:
    """Run or resume ``spec`` as its only driver (its lock is held from before the first write to the
    last). ``executor``: where the probes run, by name (``orchestrator.executors``; default the file's
    ``cluster.executor``, itself ``ray`` by default; ``"inline"``: this process, no Ray, as in a
    notebook), or an executor already made (a test's). ``progress``: None picks a bar
    on a terminal and lines elsewhere; False prints nothing; True forces the bar; or a mode of
    ``orchestrator.progress.Progress``."""
    from orchestrator.migrate import adopt, adoptable, check_schema_versions
    store = Store(spec.results_root)
    check_recorded_kind(spec, store)
    check_schema_versions(spec, store)  # rows whose columns meant something else: refused, nothing written
    store.check_writable(spec.name)  # an unwritable or full root fails here: no Ray, no MLflow run, no work lost
    # This driver's cells only: a driver of other cells (other seeds) may run beside it. Rows carry the
    # lease's epoch; a lost lease stops writes. A stop signal while Ray starts is a Ctrl-C too.
    with stop_signals_as_ctrl_c(), cells_lease(spec.results_root, spec.name, cell_labels(spec)) as lease:
        store.epoch, store.guard, store.compacting = lease.epoch, lease, True
        cells, probes = adopt(spec, store, adoptable(spec, store))  # ids an added option changed: not run again
        if cells and progress is not False:
            print(f"{spec.name}: adopted {cells} cell(s) and {probes} probe(s) recorded by an older factsweep under "
                  "other cell ids (the options added since are at their defaults); nothing of them runs again")
        chosen = executor or spec.executor
        return SweepRun(spec, store, progress, lease).run(retry_failed=retry_failed, address=address, executor=chosen)


class SweepRun:
    """One invocation of a sweep, in named steps over its state (plans, records, MLflow, progress)."""

    def __init__(self, spec: Spec, store: Store, progress, lease=None):
        self.spec, self.store, self.progress, self.lease = spec, store, progress, lease
        self.start = time.perf_counter()
        self.probes_run = self.probes_failed = 0

    def run(self, *, retry_failed: bool, address: str | None, executor: str | Executor) -> RunReport:
        todo = self.plan(retry_failed)
        if todo and isinstance(executor, str):  # nothing to run: a cluster that cannot run it costs nothing
            executor = executors.start(executor, self.spec, address, status=self.bar.status)
        with stop_signals_as_ctrl_c():  # again after Ray's init, which installs its own SIGTERM handler
            return self._run(todo, executor, address)

    def _run(self, todo: list[planning.CellPlan], executor: Executor | None, address: str | None) -> RunReport:
        self.record_start(address)
        self.tracker = tracker_for(self.spec)
        self.tracker.close_stale()
        sync_tracking(self.spec, self.store, self.tracker)
        if todo:  # a no-op resume leaves MLflow as it is
            self.tracker.start(self.spec, self.invocation)
        try:
            if todo:
                self.bar.begin()
                self.drive(executor, todo)
            self.end("finished")
            if todo:  # a no-op resume leaves MLflow (and the sweep run's state) as it is
                self.tracker.describe(self.spec, self.counts())
            self.tracker.finish()
        except BaseException as e:  # a StorageError (disk full) mid-sweep: what was recorded stays, the rest reruns
            self.tracker.finish("FAILED" if isinstance(e, Exception) else "KILLED")
            self.end("failed" if isinstance(e, Exception) else "interrupted", best_effort=True)
            raise
        finally:
            self.bar.close()
        states = [c.state for c in self.plans]
        return RunReport(len(self.plans), states.count(planning.DONE), states.count(planning.FAILED),
                         self.probes_run, self.probes_failed, time.perf_counter() - self.start,
                         not self.tracker.failed)

    def counts(self) -> dict:
        """The sweep run's summary metrics after this invocation."""
        states = [c.state for c in self.plans]
        return {"cells": len(self.plans), "cells_done": states.count(planning.DONE),
                "cells_failed": states.count(planning.FAILED), "probes_run": self.probes_run,
                "probes_failed": self.probes_failed, "seconds": round(time.perf_counter() - self.start, 1)}

    def plan(self, retry_failed: bool) -> list[planning.CellPlan]:
        """The plan, read from the records (nothing is written yet); returns the cells that still need
        probes, in the experiment's order."""
        spec, store = self.spec, self.store
        self.finished = Scope.of_spec(spec).load(store, "cells").to_dict("records")
        self.plans = planning.build_plan(spec, store, self.finished)
        if retry_failed:
            for cell in self.plans:
                cell.failures.clear()
        todo = [c for c in self.plans if c.state == planning.PENDING]
        if spec.experiment.order:
            todo.sort(key=lambda c: spec.experiment.order(c.config))
        mode = {None: None, False: "quiet", True: "bar"}.get(self.progress, self.progress)
        self.bar = Progress(spec.name, len(self.plans), len(self.plans) - len(todo), mode=mode)
        return todo

    def record_start(self, address: str | None) -> None:
        """The first writes: temporary files of a killed writer removed, this invocation's row, and the
        summary rows of cells a kill left finished but unsummarised."""
        spec, store = self.spec, self.store
        others = self.lease.others() if self.lease is not None else []  # live drivers of other cells
        if not others:  # theirs may be being written: a leftover is invisible to readers, and goes next time
            store.remove_temporary(spec.name, older_than_s=10.0)
        close_stale_invocations(spec, store, alive=others)
        self.invocation = new_invocation(spec, command="run", address=address or spec.cluster_address)
        store.append("invocations", spec.name, [self.invocation])
        record_finished_cells(spec, store, self.plans, self.invocation)

    def drive(self, executor: Executor, todo: list[planning.CellPlan]) -> None:
        """Keep the executor's slots filled and handle tasks in the order they finish."""
        queue, in_flight, outstanding = list(todo), {}, {}
        while queue or in_flight:
            while queue and len(in_flight) < executor.slots():
                cell = self.next_cell(queue, busy=len(in_flight) >= executor.cores())
                if cell is None:
                    break
                if not cell.results:  # a cell's first round opens around the newest prediction
                    planning.advance(self.spec, cell, self.finished)
                probes = [p for p in cell.next_probes if p["probe_id"] not in cell.failures]
                config = {**cell.config, EARLY_STOP: self.spec.early_stop}  # execution setting, not identity
                for i in range(0, len(probes), self.spec.probes_per_task):
                    chunk = probes[i:i + self.spec.probes_per_task]
                    in_flight[executor.submit(self.spec.experiment.name, config, chunk)] = (cell, chunk)
                    outstanding[cell.cell_id] = outstanding.get(cell.cell_id, 0) + 1
            ready = executor.wait(list(in_flight), timeout=10.0)
            self.bar.tick(len(in_flight))
            for handle in ready:
                cell, chunk = in_flight.pop(handle)
                outstanding[cell.cell_id] -= 1
                self.record(cell, executor.collect(handle, chunk))
                if outstanding[cell.cell_id]:
                    continue
                planning.advance(self.spec, cell)
                if cell.state == planning.PENDING:  # a started cell goes on before new ones start
                    queue.insert(0, cell)
                elif cell.state == planning.DONE:
                    self.complete(cell)

    def next_cell(self, queue: list[planning.CellPlan], *, busy: bool) -> planning.CellPlan | None:
        """The first queued cell that should start now. With predictions, a new cell waits while
        every core is busy: the cells running now may finish and sharpen its prediction (the
        experiment's order puts the cheapest first), and an idle core never waits. Started cells,
        and every cell of a plain search, also fill the slots queued behind the busy cores."""
        predicting = self.spec.predict and self.spec.experiment.predict
        for i, cell in enumerate(queue):
            if cell.results or not busy or not predicting:
                return queue.pop(i)
        return None

    def record(self, cell: planning.CellPlan, rows: list[dict]) -> None:
        """A finished task's rows: to Parquet at once, then into the cell's results or failures."""
        spec = self.spec
        extra = {**planning.prediction_fields(spec, cell.prediction), **cell.inputs, **_made_by(self.invocation)}
        self.store.append("probes", spec.name, [{"cell_id": cell.cell_id, "experiment": spec.experiment.name,
                                                 **cell.config, **r, **extra} for r in rows])
        for r in rows:
            if r["status"] == "ok":
                cell.results.append({**r, **extra})
                cell.failures.pop(r["probe_id"], None)
            else:
                cell.failures[r["probe_id"]] = r["error"]
                self.probes_failed += 1
        self.probes_run += len(rows)
        self.bar.probes_recorded(sum(r["status"] == "ok" for r in rows), sum(r["status"] != "ok" for r in rows))

    def complete(self, cell: planning.CellPlan) -> None:
        """A finished cell: its summary row, its MLflow run, a line of progress, a basis for predictions."""
        spec = self.spec
        row = cell_row(spec, cell, self.invocation)
        self.store.append("cells", spec.name, [row])
        self.finished.append(row)
        self.tracker.log_cell(spec.name, _tracked(spec, row), _frame(cell.results))
        shown = cell_columns.apart(spec.experiment, spec.varying)
        results = cell_columns.results(spec.experiment)[:2]
        self.bar.cell_done({k: cell.config.get(k) for k in shown}, {k: row.get(k) for k in results})

    def end(self, state: str, best_effort: bool = False) -> None:
        """This invocation's closing row, then the fragments compacted (a clean end only)."""
        states = [c.state for c in self.plans]
        row = finish_invocation(self.invocation, state, cells_done=states.count(planning.DONE),
                                probes_run=self.probes_run, probes_failed=self.probes_failed)
        try:
            self.store.append("invocations", self.spec.name, [row])
            if state == "finished":
                for table in ("probes", "cells", "invocations"):
                    self.store.compact(table, self.spec.name)
        except Exception:  # noqa: BLE001 - the run is already ending on an error, which stays the one reported
            if not best_effort:
                raise


def close_stale_invocations(spec: Spec, store: Store, alive: list[dict] = ()) -> int:
    """Invocations still 'running' whose driver is gone (a kill -9, a lost SIGHUP, a power cut) get their
    closing row, state 'killed'; returns how many.

    Gone means: older than this driver (a lower epoch: a newer one's rows outrank ours) and not among
    the ``alive`` drivers of other cells (``CellsLock.others``). One of those that finished while this
    was read has written its own last row before it let go of its locks: the rows are read again, so it
    is never marked 'killed'.
    """
    live = {(str(d.get("host")), str(d.get("pid"))) for d in alive}

    def running(frame):
        if not len(frame) or "state" not in frame:
            return []
        rows = frame[frame["state"] == "running"].to_dict("records")
        return [r for r in rows if _older(r, store.epoch) and (str(r.get("host")), _pid(r)) not in live]
    stale = running(store.load("invocations", spec.name, missing_ok=True))
    if stale and alive:
        again = {r["invocation_id"] for r in running(store.load("invocations", spec.name, missing_ok=True))}
        stale = [r for r in stale if r["invocation_id"] in again]
    if not stale:
        return 0
    kept = [{k: v for k, v in row.items() if k not in ("recorded_at", "schema_version", "sweep")} for row in stale]
    store.append("invocations", spec.name, [{**row, "state": "killed"} for row in kept])  # a newer row of each
    return len(stale)


def _older(row: dict, epoch: int | None) -> bool:
    value = row.get(EPOCH)
    mine = float("inf") if epoch is None else epoch
    return not is_set(value) or float(value) < mine  # no epoch: written before leases


def _pid(row: dict) -> str:
    value = row.get("pid")
    return str(int(value)) if is_set(value) else "None"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


@contextlib.contextmanager
def stop_signals_as_ctrl_c():
    """SIGTERM (``kill``, ``scancel``, preemption, a batch system's time limit), SIGHUP (a closed terminal or
    SSH session) and SIGUSR1 (SLURM's pre-timeout ``--signal``) stop the driver as Ctrl-C does: what is recorded stays, the invocation is closed 'interrupted', the sweep run is
    marked KILLED, one line and exit 130 (for a requeue to resume). (Ray's own SIGTERM handler dumps a C++ stack and aborts, 134.)
    Ctrl-C too goes through this handler: one arriving while MLflow's sqlite store is written waits for
    the write to end (``orchestrator.interrupts``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_or_defer) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _frame(rows: list[dict]):
    import pandas as pd
    return pd.DataFrame(rows)
