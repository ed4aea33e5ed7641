"""How a sweep looks in the MLflow UI: the runs table a researcher opens, its columns, and its URL.

MLflow 3 opens an experiment on its GenAI pages and shows a new runs table with only a few attribute
columns. Two documented-by-the-UI mechanisms fix that without any browser state: the experiment tag
``mlflow.experimentKind`` (custom model development, i.e. the "Model training" pages), and a shared
view (``mlflow.sharedViewState.<key>`` experiment tag, opened by ``viewStateShareKey=<key>`` in the
URL) that selects the cell runs and shows their swept parameters and results as columns. Every link
carries ``workflowType=machine_learning``: the UI otherwise takes the workflow from the browser's
storage, GenAI on a first visit, and a run page then opens on traces and evaluations.

A cell run shows the parameters that apply to it (``shown_params``) and numbers rounded for reading
(``display``); Parquet keeps every value exact.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
SHARE_KEY = "factsweep"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARE_KEY}"
CELL_FILTER = "tags.`factsweep.kind` = 'cell'"
WORKFLOW = "workflowType=machine_learning"  # the query parameter of MLflow 3's model-training view
CHART_SECTION = "factsweep-charts"
DIGITS = 4  # significant figures a fractional number is shown with


def view_state(params: list[str], metrics: list[str]) -> str:
    """The shared view: the cell runs only, every one visible in charts, the swept parameters and the
    results as columns, sorted by the first result. Sorting by anything but start time also makes
    MLflow list the runs flat instead of folded under the sweep run."""
    columns = [f"params.`{p}`" for p in params] + [f"metrics.`{m}`" for m in metrics]
    order = f"metrics.`{metrics[0]}`" if metrics else "attributes.run_name"
    return json.dumps({"searchFilter": CELL_FILTER, "selectedColumns": columns, "runsHiddenMode": "SHOW_ALL",
                       "orderByKey": order, "orderByAsc": True, **charts(params, metrics)})


def charts(params: list[str], metrics: list[str]) -> dict:
    """Chart cards saved in the shared view (its "Chart" tab): each result against ``num_facts`` and
    parallel coordinates over the swept parameters and the results. MLflow's scatter cards have
    linear axes and one colour per run; the log-axis chart coloured by method, with a band over
    seeds, is a figure artifact of the sweep run (``orchestrator.scaling_chart``)."""
    results = [m for m in ("min_width", "params") if m in metrics] or metrics[:2]
    cards = [{"uuid": f"factsweep-{m}-vs-num_facts", "type": "SCATTER", "runsCountToCompare": 500,
              "metricSectionId": CHART_SECTION, "deleted": False, "isGenerated": False,
              "xaxis": {"key": "num_facts", "type": "PARAM"}, "yaxis": {"key": m, "type": "METRIC"}}
             for m in results if "num_facts" in params]
    if params and results:
        cards.append({"uuid": "factsweep-parallel", "type": "PARALLEL", "runsCountToCompare": 500,
                      "metricSectionId": CHART_SECTION, "deleted": False, "isGenerated": False,
                      "selectedParams": list(params), "selectedMetrics": results, "showAllRuns": True})
    if not cards:
        return {}
    section = {"uuid": CHART_SECTION, "name": "factsweep", "display": True, "isReordered": False,
               "deleted": False, "isFirstTime": False}
    return {"compareRunCharts": cards, "compareRunSections": [section]}


def url(base: str, experiment_id: str) -> str:
    """The runs table of one sweep with the shared view applied."""
    return (f"{base.rstrip('/')}/#/experiments/{quote(str(experiment_id))}/runs"
            f"?{WORKFLOW}&viewStateShareKey={SHARE_KEY}")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page (the sweep run: its report, figures and summary) in the model-training view."""
    return f"{base.rstrip('/')}/#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}?{WORKFLOW}"


def home_url(base: str) -> str:
    """The experiments list in the model-training view."""
    return f"{base.rstrip('/')}/#/experiments?{WORKFLOW}"


def run_name(config: dict, keys: list[str], taken: set[str], cell_id: str) -> str:
    """A readable name from the parameters that tell the cells apart ("gd d=32 num_facts=256 seed=0":
    the first key's value bare), always ending with the seed, unique in the experiment: a name another
    cell already has gets the cell id's first digits."""
    keys = [k for k in keys if k in config and k != "seed"] + (["seed"] if "seed" in config else [])
    parts = [str(config[k]) if i == 0 and k != "seed" else f"{k}={config[k]}" for i, k in enumerate(keys)]
    name = " ".join(parts) or cell_id[:8]
    return name if name not in taken else f"{name} #{cell_id[:6]}"


def shown_params(config: dict, varying: tuple[str, ...] | list[str], params: Mapping[str, Any]) -> dict:
    """The cell's parameters that apply to it. A parameter that declares ``read_when`` (key, values):
    every cell carries it, as part of its id, but only cells whose ``key`` is one of ``values`` read
    it; it is shown only when the file varies it, or when the cell reads it and it is not at its
    default (a geometry's options: ``llm_*`` left out of a synthetic cell, ``beta``, ``spike_on`` and
    ``kappa`` of a spherical one, the plain geometry). ``params``: the experiment's parameters (an
    unknown key is shown)."""
    def applies(key, value) -> bool:
        read_when = getattr(params.get(key), "read_when", None)
        if read_when is None or key in varying:
            return True
        by, values = read_when
        return (by not in config or config[by] in values) and value != params[key].default
    return {k: v for k, v in config.items() if applies(k, v)}


def display(value) -> str:
    """A parameter as text: a fractional number to 4 significant figures when that text reads back as
    the same number (0.30000000000000004 -> 0.3), else exact, so two cells never look alike."""
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        short = f"{value:.{DIGITS}g}"
        return short if math.isclose(float(short), value, rel_tol=1e-9) else repr(value)
    return str(value)


def rounded(value: float) -> float:
    """A metric for the runs table: integral values (widths, parameter counts) exact, fractional ones
    to 4 significant figures (the exact value stays in Parquet: ``factsweep query``)."""
    if value.is_integer() or value == 0:
        return value
    return float(f"{value:.{DIGITS}g}")
