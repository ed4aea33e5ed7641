"""The width predicted for a capacity cell from the finished cells of its setting: close on a
measured GD grid, exact on a law it can represent, never mixing settings, and the GD rule of thumb
when nothing has finished; and in a sweep, cells opened around their predicted width record the
prediction and find exactly the plain search's widths."""
import math

import pandas as pd
import pytest

from factmlp.experiments.capacity_prediction import predict
from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

SETTING = {"method": "gd", "geometry": "spherical", "tied": True, "mapping": "permutation", "threshold": 1.0, "seed": 0}
# Minimum widths measured by benchmarks/search_efficiency.py (GD, 10k epochs, lr 1e-3), (d, F) -> m.
MEASURED = {(64, 128): 4, (32, 128): 6, (64, 256): 6, (32, 256): 10, (64, 512): 11, (32, 512): 21,
            (64, 1024): 23, (32, 1024): 49}


def cell(d, facts, **changes):
    return {**SETTING, "d": d, "num_facts": facts, **changes}


def finished(widths: dict) -> list[dict]:
    return [{**cell(d, f), "min_width": m, "stored": True} for (d, f), m in widths.items()]


def test_the_largest_measured_cells_are_predicted_within_ten_percent_from_the_smaller_ones():
    for target in [(64, 1024), (32, 1024)]:
        before = {k: m for k, m in MEASURED.items() if k[1] / k[0] < target[1] / target[0]}
        prediction = predict(cell(*target), finished(before))
        assert abs(prediction.value / MEASURED[target] - 1) < 0.10, (target, prediction)
        assert 0.06 <= prediction.spread <= 0.25


def test_a_bending_power_law_is_extrapolated_one_octave_within_two_percent():
    def law(d, f):  # log2 m = 1 + 0.7 x + 0.1 x^2, x = log2(F/d): the slope grows with F/d
        x = math.log2(f / d)
        return 2 ** (1 + 0.7 * x + 0.1 * x * x)
    known = {(d, f): law(d, f) for d in (32, 64) for f in (64, 128, 256, 512) if f / d <= 8}
    prediction = predict(cell(32, 512), finished(known))
    assert prediction.value == pytest.approx(law(32, 512), rel=0.02)
    assert prediction.spread == 0.06  # the fit predicted every earlier cell it could exactly


def test_other_settings_and_unstored_cells_are_never_used():
    others = [{**c, "geometry": "anisotropic"} for c in finished(MEASURED)]
    failed = [{**cell(32, 512), "min_width": None, "stored": False}]
    assert predict(cell(32, 2048, method="hebbian"), others + failed) is None
    only = predict(cell(32, 2048), others + failed + finished({(32, 256): 10}))
    assert only.value == pytest.approx(10 * 8) and only.spread == 0.25  # one cell: m ∝ F/d


def test_a_gd_cell_with_nothing_finished_opens_around_the_rule_of_thumb():
    prediction = predict(cell(32, 960), [])
    assert prediction.value == pytest.approx(960 / (0.75 * 32)) and prediction.spread == 0.5
    assert predict(cell(32, 960, method="hebbian_whitened"), []) is None


# A sweep run inline in this process (the same records as Ray), with and without predictions.
GRID = ["grid.method=[hebbian_whitened, gd]", "grid.num_facts=[8, 16, 24, 32]", "search.high=256"]


def widths(path, overrides) -> pd.DataFrame:
    spec = load_spec(path, overrides)
    report = run_sweep(spec, progress=False, executor="inline")
    assert report.cells_done == report.cells == 8
    cells = Store(spec.results_root).load("cells", spec.name)
    return cells.set_index(["method", "num_facts"]).sort_index()


@pytest.mark.slow  # whole sweeps searched twice: not in make test-fast
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
