"""The driver: submit probes as Ray tasks, record results as they complete, advance each search.

Only the driver writes. Each finished task is appended to Parquet at once (a kill loses no
finished result), then the cell's next probes are derived from its records; a cell that is done
gets its summary row and its MLflow child run. In-flight work is bounded, results are handled in
completion order (``ray.wait``), and a task whose worker died is retried by Ray.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm import tqdm

from orchestrator import plan as planning
from orchestrator.cluster import connect_for
from orchestrator.lock import SweepLock
from orchestrator.spec import Spec, check_recorded_kind
from orchestrator.store import Store
from orchestrator.tracking import Tracker, default_uri
from orchestrator.worker import execute


@dataclass
class RunReport:
    cells: int
    cells_done: int
    cells_failed: int
    probes_run: int
    probes_failed: int
    seconds: float


def tracker_for(spec: Spec) -> Tracker:
    return Tracker(spec.tracking_uri or default_uri(spec.results_root), spec.tracking_experiment or spec.name,
                   spec.results_root)


def cell_row(spec: Spec, cell: planning.CellPlan) -> dict:
    return {"cell_id": cell.cell_id, "experiment": spec.experiment.name, **cell.config,
            **spec.experiment.summarize(cell.config, cell.results)}


def record_finished_cells(spec: Spec, store: Store, plans: list[planning.CellPlan]) -> None:
    """Write the summary row of every finished cell that lacks one (a kill can fall in between)."""
    cells = store.load("cells", spec.name)
    have = set(cells["cell_id"]) if len(cells) else set()
    store.append("cells", spec.name, [cell_row(spec, c) for c in plans
                                      if c.state == planning.DONE and c.cell_id not in have])


def sync_tracking(spec: Spec, store: Store, tracker: Tracker) -> int:
    """Log every finished cell that MLflow lacks; returns how many were logged."""
    logged = tracker.logged_cells()
    if logged is None:
        return 0
    cells = store.load("cells", spec.name)
    probes = store.load("probes", spec.name)
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
    config = {k: row[k] for k in spec.experiment.params if k in row}
    summary = {k: v for k, v in row.items() if k not in config and k not in ("cell_id", "experiment", "sweep")}
    name = "-".join(str(config[k]) for k in spec.experiment.summary_columns if k in config)
    return {"cell_id": row["cell_id"], "config": config, "summary": summary, "run_name": name,
            "trajectory": spec.experiment.trajectory}


def run_sweep(spec: Spec, *, retry_failed: bool = False, progress: bool | None = None,
              address: str | None = None) -> RunReport:
    """Run or resume a sweep as its only driver: its lock is held from before the first write to the last."""
    store = Store(spec.results_root)
    check_recorded_kind(spec, store)
    store.check_writable(spec.name)  # an unwritable or full root fails here: no Ray, no MLflow run, no work lost
    with SweepLock(spec.results_root, spec.name):
        return _run_locked(spec, store, retry_failed=retry_failed, progress=progress, address=address)


def _run_locked(spec: Spec, store: Store, *, retry_failed: bool, progress: bool | None,
                address: str | None) -> RunReport:
    start = time.perf_counter()
    store.remove_temporary(spec.name)
    plans = planning.build_plan(spec, store)
    record_finished_cells(spec, store, plans)
    if retry_failed:
        for cell in plans:
            cell.failures.clear()
    todo = [c for c in plans if c.state == planning.PENDING]
    ray = connect_for(spec, address) if todo else None  # before MLflow: a cluster that cannot run it costs nothing
    tracker = tracker_for(spec)
    tracker.start(spec.name, {"source": spec.source, "cells": len(plans), "retry_failed": retry_failed})
    sync_tracking(spec, store, tracker)
    probes_run = probes_failed = 0
    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), desc=spec.name, unit="cell",
               disable=None if progress is None else not progress, dynamic_ncols=True)
    try:
        if todo:
            task = ray.remote(execute).options(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus,
                                               max_retries=spec.max_retries, retry_exceptions=False)
            queue, in_flight, outstanding = list(todo), {}, {}
            slots, slots_checked = 2, 0.0

            def submit(cell: planning.CellPlan) -> None:
                probes = [p for p in cell.next_probes if p["probe_id"] not in cell.failures]
                for i in range(0, len(probes), spec.probes_per_task):
                    chunk = probes[i:i + spec.probes_per_task]
                    in_flight[task.remote(spec.experiment.name, cell.config, chunk)] = (cell, chunk)
                    outstanding[cell.cell_id] = outstanding.get(cell.cell_id, 0) + 1

            while queue or in_flight:
                if time.monotonic() - slots_checked > 5:  # workers may join (autoscaling) or leave
                    slots = max(2, int(2 * ray.cluster_resources().get("CPU", 1) / spec.num_cpus))
                    slots_checked = time.monotonic()
                while queue and len(in_flight) < slots:
                    submit(queue.pop(0))
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    cell, chunk = in_flight.pop(ref)
                    outstanding[cell.cell_id] -= 1
                    rows = _collect(ray, ref, chunk)
                    store.append("probes", spec.name, [{"cell_id": cell.cell_id, "experiment": spec.experiment.name,
                                                        **cell.config, **r} for r in rows])
                    for r in rows:
                        if r["status"] == "ok":
                            cell.results.append(r)
                            cell.failures.pop(r["probe_id"], None)
                        else:
                            cell.failures[r["probe_id"]] = r["error"]
                            probes_failed += 1
                    probes_run += len(rows)
                    if outstanding[cell.cell_id]:
                        continue
                    planning.advance(spec, cell)
                    if cell.state == planning.PENDING:
                        queue.append(cell)
                    elif cell.state == planning.DONE:
                        row = cell_row(spec, cell)
                        store.append("cells", spec.name, [row])
                        tracker.log_cell(spec.name, _tracked(spec, row), _frame(cell.results))
                        bar.update(1)
                    bar.set_postfix(probes=probes_run, failed=probes_failed, refresh=False)
        for table in ("probes", "cells"):
            store.compact(table, spec.name)
        tracker.finish()
    except BaseException as e:  # a StorageError (disk full) mid-sweep: what was recorded stays, the rest reruns
        tracker.finish("FAILED" if isinstance(e, Exception) else "KILLED")
        raise
    finally:
        bar.close()
    states = [c.state for c in plans]
    return RunReport(len(plans), states.count(planning.DONE), states.count(planning.FAILED),
                     probes_run, probes_failed, time.perf_counter() - start)


def _collect(ray, ref, chunk: list[dict]) -> list[dict]:
    """The task's rows, or failed rows when the task itself died beyond its retries."""
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001 - a dead worker or node becomes failed probes
        message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
        return [{**p, "status": "failed", "error": message} for p in chunk]


def _frame(rows: list[dict]):
    import pandas as pd
    return pd.DataFrame(rows)
