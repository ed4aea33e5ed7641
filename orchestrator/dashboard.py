"""How a sweep looks in the MLflow UI: the runs table a researcher opens, its columns, and its URL.

MLflow 3 opens an experiment on its GenAI pages and shows a new runs table with only a few attribute
columns. Two documented-by-the-UI mechanisms fix that without any browser state: the experiment tag
``mlflow.experimentKind`` (custom model development, i.e. the "Model training" pages), and a shared
view (``mlflow.sharedViewState.<key>`` experiment tag, opened by ``viewStateShareKey=<key>`` in the
URL) that selects the cell runs and shows their swept parameters and results as columns.
"""
from __future__ import annotations

import json
from urllib.parse import quote

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
SHARE_KEY = "factsweep"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARE_KEY}"
CELL_FILTER = "tags.`factsweep.kind` = 'cell'"


def view_state(params: list[str], metrics: list[str]) -> str:
    """The shared view: the cell runs only, every one visible in charts, the swept parameters and the
    results as columns, sorted by the first result. Sorting by anything but start time also makes
    MLflow list the runs flat instead of folded under the sweep run."""
    columns = [f"params.`{p}`" for p in params] + [f"metrics.`{m}`" for m in metrics]
    order = f"metrics.`{metrics[0]}`" if metrics else "attributes.run_name"
    return json.dumps({"searchFilter": CELL_FILTER, "selectedColumns": columns, "runsHiddenMode": "SHOW_ALL",
                       "orderByKey": order, "orderByAsc": True})


def url(base: str, experiment_id: str) -> str:
    """The runs table of one sweep with the shared view applied."""
    return (f"{base.rstrip('/')}/#/experiments/{quote(str(experiment_id))}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={SHARE_KEY}")


def run_name(config: dict, keys: list[str], taken: set[str], cell_id: str) -> str:
    """A readable name from the parameters that tell the cells apart ("gd d=32 num_facts=256 seed=0":
    the first key's value bare), unique in the experiment: a name another cell already has gets the
    cell id's first digits."""
    parts = [str(config[k]) if i == 0 else f"{k}={config[k]}" for i, k in enumerate(k for k in keys if k in config)]
    name = " ".join(parts) or cell_id[:8]
    return name if name not in taken else f"{name} #{cell_id[:6]}"
