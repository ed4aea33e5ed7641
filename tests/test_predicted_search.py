"""Cells opened around a predicted width record the prediction and find exactly the plain search's
widths; the inline executor runs a sweep in this process with the same records as Ray."""
from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

pytestmark = pytest.mark.slow  # whole sweeps searched twice through Ray: not in make test-fast


GRID = ["grid.method=[hebbian_whitened, gd]", "grid.num_facts=[8, 16, 24, 32]", "search.high=256"]


def widths(path, overrides) -> pd.DataFrame:
    spec = load_spec(path, overrides)
    report = run_sweep(spec, progress=False, inline=True)
    assert report.cells_done == report.cells == 8
    cells = Store(spec.results_root).load("cells", spec.name)
    return cells.set_index(["method", "num_facts"]).sort_index()


def test_predicted_brackets_find_the_plain_widths_and_record_the_prediction(tiny_sweep, capsys):
    path = tiny_sweep("guided")
    plain = widths(path, GRID + ["search.predict=false", "storage.root=" + str(path.parent / "plain")])
    guided = widths(path, GRID)
    assert guided["min_width"].tolist() == plain["min_width"].tolist()
    assert plain["predicted_width"].isna().all()
    predicted = guided["predicted_width"].notna()
    assert predicted.sum() >= 4  # every cell after the first of its method (while the core was busy)
    for (method, facts), row in guided[predicted].iterrows():  # a prediction from the smaller F of its method
        assert 0 < row["predicted_width"] < 8 * row["min_width"] + 8
    assert main(["plan", str(path), *GRID]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out.splitlines()[0]
