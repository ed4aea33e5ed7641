"""A tiny sweep through a real local Ray (or inline, in this process), a real sqlite MLflow store and
real Parquet files. The Ray runs start Ray, and are in the full suite only (marked slow)."""
from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG, default_uri


EXECUTORS = ["inline", pytest.param("ray", marks=pytest.mark.slow)]


@pytest.fixture(params=EXECUTORS)
def executor(request) -> str:
    """Where the sweep's probes run: ``inline`` in the fast lane, and Ray (the session's) in the full suite;
    inline with one torch thread, as each Ray task of one CPU has."""
    request.getfixturevalue("ray_session" if request.param == "ray" else "one_torch_thread")
    return request.param


def mlflow_cells(spec) -> dict[str, dict]:
    client = MlflowClient(spec.tracking_uri or default_uri(spec.results_root))
    experiment = client.get_experiment_by_name(spec.tracking_experiment or spec.name)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    ids = [r.data.tags[CELL_TAG] for r in runs]
    assert len(ids) == len(set(ids)), "duplicate MLflow child runs"
    return {r.data.tags[CELL_TAG]: r for r in runs}


def test_sweep_parquet_and_mlflow_agree(executor, tiny_sweep):
    spec = load_spec(tiny_sweep())
    report = run_sweep(spec, progress=False, executor=executor)
    assert (report.cells, report.cells_done, report.probes_failed) == (4, 4, 0)

    cells = Store(spec.results_root).load("cells", spec.name)
    probes = Store(spec.results_root).load("probes", spec.name)
    assert len(cells) == 4 and cells["cell_id"].is_unique
    assert len(probes) == report.probes_run and probes["probe_id"].is_unique
    # Every recorded minimum width really is the smallest probed width that stored all facts.
    for row in cells.to_dict("records"):
        mine = probes[probes["cell_id"] == row["cell_id"]]
        stored = mine[mine["accuracy"] >= 1.0]["width"]
        assert row["min_width"] == stored.min()
        assert (mine[mine["width"] == row["min_width"] - 1]["accuracy"] < 1.0).all()
        assert row["params"] == 3 * row["d"] * row["min_width"]

    runs = mlflow_cells(spec)
    assert set(runs) == set(cells["cell_id"])
    for row in cells.to_dict("records"):
        run = runs[row["cell_id"]]
        assert run.data.metrics["min_width"] == row["min_width"]
        assert run.data.metrics["params"] == row["params"]
        assert run.data.params["method"] == row["method"] and int(run.data.params["num_facts"]) == row["num_facts"]
        assert ("gd_epochs" in run.data.params) == (row["method"] == "gd")  # a cell's own method options only
        # geometry options its geometry does not use, or left at their default: in its id, not on its page
        assert not {"beta", "kappa"} & set(run.data.params) and not [k for k in run.data.params if k.startswith("llm_")]
        assert run.data.tags["mlflow.parentRunId"]  # the sweep run
        history = MlflowClient(default_uri(spec.results_root)).get_metric_history(run.info.run_id, "accuracy_by_width")
        assert len(history) == row["num_probes"]  # accuracy against width: step = width, in width order
        assert [m.step for m in history] == sorted(m.step for m in history)
        assert all(m.value >= 1.0 for m in history if m.step == row["min_width"])

    # Parquet readable by pandas and DuckDB alike, with the same rows.
    sql = Store(spec.results_root).connect().execute(
        "select cell_id, min_width from cells order by cell_id").df()
    assert sql.equals(cells.sort_values("cell_id")[["cell_id", "min_width"]].reset_index(drop=True)
                      .astype(sql.dtypes.to_dict()))


def test_second_run_runs_nothing(executor, tiny_sweep, shared_tracking):
    path = tiny_sweep("again")
    tracking = [shared_tracking, f"tracking.experiment=again-{executor}"]  # the session's store: no new one
    first = run_sweep(load_spec(path, tracking), progress=False, executor=executor)
    assert first.probes_run > 0
    second = run_sweep(load_spec(path, tracking), progress=False, executor=executor)
    assert second.probes_run == 0 and second.cells_done == 4
    spec = load_spec(path, tracking)
    assert len(Store(spec.results_root).load("probes", spec.name)) == first.probes_run
    assert len(mlflow_cells(spec)) == 4


def test_growing_grid_runs_only_new_cells(executor, tiny_sweep, shared_tracking):
    path = tiny_sweep("grow")
    tracking = [shared_tracking, f"tracking.experiment=grow-{executor}"]
    first = run_sweep(load_spec(path, tracking), progress=False, executor=executor)
    grown = run_sweep(load_spec(path, ["grid.num_facts=[8,16,24]", *tracking]), progress=False, executor=executor)
    assert grown.cells == 6 and grown.cells_done == 6
    probes = Store(load_spec(path).results_root).load("probes", "grow")
    assert set(probes[probes["recorded_at"].notna()]["num_facts"]) == {8, 16, 24}
    assert len(probes) == first.probes_run + grown.probes_run
    assert pd.Series(probes["probe_id"]).is_unique
