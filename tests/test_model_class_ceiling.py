"""The bilinear class's capacity ceiling (factmlp/ceiling.py) and the search's plateau rule."""
from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pytest
import torch

from factmlp import ceiling, geometries
from factmlp.experiments import capacity, capacity_findings
from factmlp.mlp import GatedMLP
from factmlp.train import TrainConfig, train_batched
from orchestrator.search import SmallestSuccess, is_plateau

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def test_a_bilinear_mlp_wider_than_p_is_a_quadratic_form_of_the_key():
    """model(x) = W φ(x) exactly, so width past p = d(d+1)/2 cannot add functions."""
    d = 5
    model = GatedMLP.random(d, 3 * ceiling.feature_count(d), generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
    x = torch.randn(40, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = ceiling.as_quadratic(model)
    assert w.shape == (d, 15)
    assert torch.allclose(model(x), ceiling.features(x.numpy()) @ w.T, atol=1e-12)


@pytest.mark.slow
def test_the_class_stores_below_its_estimate_and_not_far_above_it():
    """The convex fit of the whole class: d = 6 (p = 21) stores F = p; at F = 5p its loss stays far
    above 0 at a stationary point (the convex minimum), so no width stores it."""
    small = ceiling.class_accuracy(geometries.make_factset("spherical", 6, 21, 0), steps=1500)
    assert small["accuracy"] == 1.0
    big = ceiling.class_accuracy(geometries.make_factset("spherical", 6, 105, 0), steps=1500)
    assert big["accuracy"] < 0.9 and big["loss"] > 0.5 and big["grad_norm"] < 1e-3


@pytest.mark.slow
def test_gd_far_past_p_does_no_better_than_the_class():
    factset = geometries.make_factset("spherical", 6, 105, 0)
    best = ceiling.class_accuracy(factset, steps=1500)["accuracy"]
    config = TrainConfig(epochs=1500, lr=0.01)
    from factmlp.evaluate import evaluate
    for trained in train_batched(factset, [21, 84], config):
        assert evaluate(trained["model"], factset)["accuracy"] <= best + 0.02


def test_bounds_are_ordered_and_the_reference_never_stores_past_the_estimate():
    assert ceiling.width_ceiling("bilinear", 16) == 136 and ceiling.width_ceiling("silu", 16) is None
    assert ceiling.feature_count(16, bias=True) == 153
    assert ceiling.estimated_capacity(16) == 272 < ceiling.counting_limit(16)
    cells = pd.concat([pd.read_csv(f) for f in glob.glob(str(REFERENCE / "*" / "*-cells.csv"))], ignore_index=True)
    gd = cells[(cells.get("method") == "gd") & (cells.get("gd_activation") == "bilinear") & (cells["stored"] == True)]  # noqa: E712
    assert len(gd) > 100
    assert (gd["num_facts"] <= [ceiling.estimated_capacity(int(d)) for d in gd["d"]]).all()


def test_plan_warns_for_the_issue_example_and_not_for_silu_or_small_f():
    base = capacity.EXPERIMENT.resolve({"method": "gd", "d": 16, "num_facts": 512})
    assert "F = 512 > 272 = 2p" in capacity.plan_warning(base)
    assert capacity.plan_warning({**base, "gd_activation": "silu"}) == ""
    assert capacity.plan_warning({**base, "num_facts": 128}) == ""
    assert "counting limit" in capacity.plan_warning({**base, "num_facts": 10 ** 6})


def test_the_search_stops_at_a_plateau_and_not_while_accuracy_climbs():
    search = SmallestSuccess("width")
    flat = {w: 0.21 for w in (40, 62, 97, 160, 320)}
    step = search.step({w: False for w in flat}, 1, 1024, 3, scores=flat)
    assert step.done and step.plateau and step.answer is None
    climbing = {w: w / 1000 for w in flat}
    step = search.step({w: False for w in flat}, 1, 1024, 3, scores=climbing)
    assert not step.done and not step.plateau
    assert not search.step({w: False for w in flat}, 1, 1024, 3).done  # no scores: no plateau rule


@pytest.mark.slow
def test_the_plateau_rule_replayed_on_the_reference_cuts_no_storing_cell():
    """Every prefix of every capacity cell's recorded probes (in the order they ran): the rule never
    fires before a storing cell's first success; it flags most cells that stored nothing."""
    probes = pd.concat([pd.read_csv(f) for f in glob.glob(str(REFERENCE / "*" / "*-probes.csv"))], ignore_index=True)
    probes = probes[probes["experiment"] == "capacity"]
    cells = pd.concat([pd.read_csv(f) for f in glob.glob(str(REFERENCE / "*" / "*-cells.csv"))], ignore_index=True)
    stored = dict(zip(cells["cell_id"], cells["stored"]))
    cut, flagged = [], []
    for cell, rows in probes.groupby("cell_id"):
        scores, observed = {}, {}
        for row in rows.sort_values(["task_started_at", "width"]).itertuples():
            if is_plateau(scores, observed):
                break
            scores[int(row.width)], observed[int(row.width)] = float(row.accuracy), bool(row.success)
        if is_plateau(scores, observed):
            (cut if stored[cell] else flagged).append(cell)
    assert cut == []
    assert len(flagged) == 21  # of the 28 reference cells that store nothing


def test_a_plateau_cell_reads_model_class_ceiling():
    cell = {"accuracy_plateau": True, "best_accuracy": 0.21, "max_width_tried": 320.0}
    assert "model-class ceiling" in capacity.cell_note(cell)
    row = {"method": "gd", "num_facts": 512, "accuracy_plateau": True, "max_width_tried": 320.0, "search_high": 1024}
    assert "model-class ceiling" in capacity_findings._stores_nothing([row])
    assert "stores nothing up to width 1024" in capacity_findings._stores_nothing([{**row, "accuracy_plateau": False}])


@pytest.mark.slow
def test_a_real_sweep_past_the_ceiling_stops_at_a_plateau_and_its_report_says_so(tmp_path):
    """d = 3 (p = 6): GD bilinear cannot store F = 96 at any width; silu at the same cost can climb."""
    from orchestrator.report import write_report
    from orchestrator.runner import run_sweep
    from orchestrator.scope import Scope
    from orchestrator.spec import load_spec
    from orchestrator.store import Store
    path = tmp_path / "ceiling.yaml"
    path.write_text("name: ceiling\nexperiment: capacity\nfixed: {method: gd, d: 3, num_facts: 96, seed: 0, "
                    "gd_epochs: 300, gd_lr: 0.03}\nsearch: {param: width, low: 1, high: 4096, arity: 3}\n"
                    f"storage: {{root: '{tmp_path}'}}\n")
    spec = load_spec(path)
    run_sweep(spec, progress=False, executor="inline")
    cell = Store(tmp_path).load("cells", "ceiling").iloc[0]
    assert bool(cell["accuracy_plateau"]) and not bool(cell["stored"])
    assert cell["max_width_tried"] < 4096  # stopped before walking to the top of the range
    _, report, _ = write_report(Scope.of_spec(spec), n_boot=20)
    report = report.read_text()
    assert "model-class ceiling" in report
