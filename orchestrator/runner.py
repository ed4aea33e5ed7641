"""The driver: submit probes as Ray tasks, record results as they complete, advance each search.

Only the driver writes. Each finished task is appended to Parquet at once (a kill loses no
finished result), then the cell's next probes are derived from its records; a cell that is done
gets its summary row and its MLflow child run. In-flight work is bounded, results are handled in
completion order (``ray.wait``), and a task whose worker died is retried by Ray.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator import plan as planning
from orchestrator.cluster import ensure_ray
from orchestrator.progress import Progress
from orchestrator.provenance import finish_invocation, new_invocation
from orchestrator.scope import Scope
from orchestrator.spec import Spec, is_set
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
                   spec.results_root, spec.name)


def name_keys(spec: Spec) -> list[str]:
    """The parameters that tell the file's cells apart (the experiment's lead column first)."""
    lead = [k for k in spec.experiment.summary_columns if k in spec.experiment.params][:1]
    return lead + [k for k in spec.varying if k not in lead]


def dashboard_columns(spec: Spec) -> tuple[list[str], list[str]]:
    """(params, metrics) the MLflow runs table shows: the swept parameters, then the results."""
    params = [k for k in spec.experiment.summary_columns if k in spec.experiment.params]
    params += [k for k in spec.varying if k not in params]
    metrics = [k for k in spec.experiment.summary_columns if k not in spec.experiment.params]
    return params, metrics + [m for m in spec.experiment.view_metrics if m not in metrics]


def cell_row(spec: Spec, cell: planning.CellPlan, invocation: dict) -> dict:
    return {"cell_id": cell.cell_id, "experiment": spec.experiment.name, **cell.config,
            **spec.experiment.summarize(cell.config, cell.results), **_made_by(invocation)}


def _made_by(invocation: dict) -> dict:
    """The provenance every recorded row carries."""
    return {"invocation_id": invocation["invocation_id"], "code_version": invocation["code_version"]}


def record_finished_cells(spec: Spec, store: Store, plans: list[planning.CellPlan], invocation: dict) -> None:
    """Write the summary row of every finished cell that lacks one (a kill can fall in between)."""
    cells = store.load("cells", spec.name, missing_ok=True)
    have = set(cells["cell_id"]) if len(cells) else set()
    store.append("cells", spec.name, [cell_row(spec, c, invocation) for c in plans
                                      if c.state == planning.DONE and c.cell_id not in have])


def sync_tracking(spec: Spec, store: Store, tracker: Tracker) -> int:
    """Log every finished cell of the sweep file that MLflow lacks; returns how many were logged."""
    logged = tracker.logged_cells()
    if logged is None:
        return 0
    tracker.show(*dashboard_columns(spec))
    scope = Scope.of_spec(spec)
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
    params = spec.experiment.params
    config = {k: row[k] for k in params if is_set(row.get(k))}  # a cell's own parameters only
    summary = {k: v for k, v in row.items() if k not in params and k not in ("cell_id", "experiment", "sweep")}
    return {"cell_id": row["cell_id"], "config": config, "summary": summary, "name_keys": name_keys(spec),
            "trajectory": spec.experiment.trajectory, "invocation_id": row.get("invocation_id"),
            "code_version": row.get("code_version")}


def run_sweep(spec: Spec, *, retry_failed: bool = False, progress: bool | str | None = None,
              address: str | None = None) -> RunReport:
    """Run or resume ``spec``. ``progress``: None picks a bar on a terminal and lines elsewhere;
    False prints nothing; True forces the bar; or a mode of ``orchestrator.progress.Progress``."""
    start = time.perf_counter()
    store = Store(spec.results_root)
    store.check_writable(spec.name)  # an unwritable or full root fails here: no Ray, no MLflow run, no work lost
    store.remove_temporary(spec.name)
    invocation = new_invocation(spec, command="run", address=address or spec.cluster_address)
    store.append("invocations", spec.name, [invocation])
    made_by = _made_by(invocation)
    plans = planning.build_plan(spec, store)
    record_finished_cells(spec, store, plans, invocation)
    if retry_failed:
        for cell in plans:
            cell.failures.clear()
    todo = [c for c in plans if c.state == planning.PENDING]
    tracker = tracker_for(spec)
    sync_tracking(spec, store, tracker)
    if todo:  # a no-op resume leaves MLflow as it is
        tracker.start(spec, invocation)
    probes_run = probes_failed = 0
    mode = {None: None, False: "quiet", True: "bar"}.get(progress, progress)
    shown = spec.varying or tuple(k for k in spec.experiment.summary_columns if k in spec.experiment.params)[:1]
    results = [k for k in spec.experiment.summary_columns if k not in spec.experiment.params][:2]
    bar = Progress(spec.name, len(plans), len(plans) - len(todo), mode=mode)
    try:
        if todo:
            bar.status("starting Ray" if not (address or spec.cluster_address) else "connecting to Ray")
            ray = ensure_ray(address or spec.cluster_address)
            bar.status("running")
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
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=10.0)
                bar.tick(len(in_flight))
                for ref in ready:
                    cell, chunk = in_flight.pop(ref)
                    outstanding[cell.cell_id] -= 1
                    rows = _collect(ray, ref, chunk)
                    store.append("probes", spec.name, [{"cell_id": cell.cell_id, "experiment": spec.experiment.name,
                                                        **cell.config, **r, **made_by} for r in rows])
                    for r in rows:
                        if r["status"] == "ok":
                            cell.results.append(r)
                            cell.failures.pop(r["probe_id"], None)
                        else:
                            cell.failures[r["probe_id"]] = r["error"]
                            probes_failed += 1
                    probes_run += len(rows)
                    bar.probes_recorded(sum(r["status"] == "ok" for r in rows), sum(r["status"] != "ok" for r in rows))
                    if outstanding[cell.cell_id]:
                        continue
                    planning.advance(spec, cell)
                    if cell.state == planning.PENDING:
                        queue.append(cell)
                    elif cell.state == planning.DONE:
                        row = cell_row(spec, cell, invocation)
                        store.append("cells", spec.name, [row])
                        tracker.log_cell(spec.name, _tracked(spec, row), _frame(cell.results))
                        bar.cell_done({k: cell.config.get(k) for k in shown}, {k: row.get(k) for k in results})
        states = [c.state for c in plans]
        counts = {"cells_done": states.count(planning.DONE), "probes_run": probes_run, "probes_failed": probes_failed}
        store.append("invocations", spec.name, [finish_invocation(invocation, "finished", **counts)])
        for table in ("probes", "cells", "invocations"):
            store.compact(table, spec.name)
        tracker.finish()
    except BaseException as e:  # a StorageError (disk full) mid-sweep: what was recorded stays, the rest reruns
        tracker.finish("FAILED" if isinstance(e, Exception) else "KILLED")
        _record_end(store, spec, invocation, "failed" if isinstance(e, Exception) else "interrupted",
                    probes_run=probes_run, probes_failed=probes_failed)
        raise
    finally:
        bar.close()
    return RunReport(len(plans), counts["cells_done"], states.count(planning.FAILED),
                     probes_run, probes_failed, time.perf_counter() - start)


def _record_end(store: Store, spec: Spec, invocation: dict, state: str, **counts) -> None:
    """Best effort: the run is already ending on an error, which must stay the one reported."""
    try:
        store.append("invocations", spec.name, [finish_invocation(invocation, state, **counts)])
    except Exception:  # noqa: BLE001 - e.g. the disk that failed the run is still full
        pass


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
