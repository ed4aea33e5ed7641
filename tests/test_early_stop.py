"""The early-stop rule for GD probes (factmlp/early_stop.py): it never changes a probe's outcome
against the full recipe on real tiny probes, every row says how many epochs ran and why it stopped,
and ``search.early_stop: false`` is the full recipe with the same cell ids."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from factmlp.early_stop import CANNOT_STORE, EPOCHS, LOSS, STORED, OutcomeRule, deciding_margin, facts_needed
from factmlp.evaluate import evaluate
from factmlp.experiments import capacity
from factmlp.geometries import make_factset
from factmlp.train import TrainConfig, train_batched
from orchestrator.errors import SpecError
from orchestrator.experiment import EARLY_STOP
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RECIPE = dict(epochs=1500, lr=1e-2)  # short enough for a test, long enough that most probes decide early
WIDTHS = [2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("num_facts, seed", [(32, 0), (48, 1), (40, 2), (56, 3)])
def test_the_rule_never_changes_whether_a_real_probe_stores(num_facts, seed):
    """Widths on both sides of the minimum, trained with the rule and with the full recipe: the same
    outcome for every width, while the rule saves epochs on stored and on failing probes alike."""
    factset = make_factset("spherical", 8, num_facts, seed, tied=True)
    early = train_batched(factset, WIDTHS, TrainConfig(**RECIPE, stop_at_accuracy=1.0))
    full = train_batched(factset, WIDTHS, TrainConfig(**RECIPE))
    stores_early = [evaluate(r["model"], factset)["accuracy"] >= 1.0 for r in early]
    stores_full = [evaluate(r["model"], factset)["accuracy"] >= 1.0 for r in full]
    assert stores_early == stores_full
    assert True in stores_full and False in stores_full  # the widths straddle the minimum
    assert {r["stop_reason"] for r in full} <= {EPOCHS, LOSS}
    for r, stored in zip(early, stores_early):
        if r["stop_reason"] in (STORED, CANNOT_STORE):
            assert (r["stop_reason"] == STORED) == stored
            assert r["epochs"] < RECIPE["epochs"]
    assert sum(r["epochs"] for r in early) < 0.8 * sum(r["epochs"] for r in full)


def test_no_failing_decision_before_half_the_lr_mass_and_min_checks_checks():
    rule = OutcomeRule(1, lambda s: 1e-3, 1000, settle=0.5, min_checks=2)
    assert rule.observe(0, torch.tensor([-5.0])) == [None]
    assert rule.observe(400, torch.tensor([-5.0])) == [None]  # q has not moved at all, but 60% is left
    assert rule.observe(600, torch.tensor([-5.0])) == [CANNOT_STORE]
    rule = OutcomeRule(1, lambda s: 1e-3, 1000, settle=0.0, min_checks=4)
    assert [rule.observe(s, torch.tensor([-5.0])) for s in (900, 950, 980, 990)] == [[None]] * 3 + [[CANNOT_STORE]]


def test_the_rate_is_the_fastest_of_the_batch():
    """A model whose own q is flat is not given up while another model of its batch moves fast."""
    rule = OutcomeRule(2, lambda s: 1e-3, 1000, settle=0.0, min_checks=2)
    rule.observe(900, torch.tensor([-0.5, -3.0]))
    assert rule.observe(950, torch.tensor([-0.5, 0.0])) == [None, None]  # 3 / 0.05 = 60; 2·60·0.05 > 0.5
    alone = OutcomeRule(1, lambda s: 1e-3, 1000, settle=0.0, min_checks=2)
    alone.observe(900, torch.tensor([-0.5]))
    assert alone.observe(950, torch.tensor([-0.5])) == [CANNOT_STORE]


def test_a_model_that_runs_every_epoch_follows_the_full_recipe():
    """The rule only removes models from the batch: a model it never stops ends where the full recipe
    ends (up to float rounding of the smaller batch)."""
    factset = make_factset("spherical", 8, 32, 0, tied=True)
    config = TrainConfig(epochs=300, lr=1e-2)
    never = TrainConfig(epochs=300, lr=1e-2, stop_at_accuracy=1.0, stop_window=100, stop_safety=1e12)
    early = train_batched(factset, [3, 6], never)
    full = train_batched(factset, [3, 6], config)
    for a, b in zip(early, full):
        assert a["stop_reason"] == b["stop_reason"] == EPOCHS and a["epochs"] == b["epochs"] == 300
        torch.testing.assert_close(a["model"].up, b["model"].up, rtol=1e-4, atol=1e-5)


def test_deciding_margin_is_the_margin_of_the_last_fact_that_must_decode():
    margins = torch.tensor([[3.0, -1.0, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]])
    assert deciding_margin(margins, 1.0).tolist() == [-1.0, 1.0]  # threshold 1: the smallest
    assert deciding_margin(margins, 0.75).tolist() == [0.5, 2.0]  # 3 of 4 must be right
    assert facts_needed(100, 0.98) == 98 and facts_needed(3, 1e-9) == 1
    assert all(facts_needed(n, t) == math.ceil(t * n - 1e-9) for n in (7, 50) for t in (0.5, 0.9, 1.0))


def test_the_rule_stores_after_a_rising_window_and_gives_up_only_when_the_lr_left_cannot_close_the_gap():
    epochs = 1000
    rule = OutcomeRule(3, lambda s: 1e-3, epochs, window=3, safety=2.0, settle=0.0, min_checks=2)
    # model 0: positive and rising; model 1: negative, moving 0.1 per check (lr mass 1e-3 per check);
    # model 2: positive but falling.
    decisions = [rule.observe(step, torch.tensor(q)) for step, q in enumerate(
        [[0.1, -1.0, 0.9], [0.2, -0.9, 0.8], [0.3, -0.8, 0.7], [0.4, -0.7, 0.6]])]
    assert [d[0] for d in decisions] == [None, None, None, STORED]  # the first check has no predecessor
    assert [d[2] for d in decisions] == [None] * 4
    # rate 0.1 / (1e-3 · 1) = 100 per unit mass; mass left ≈ 1: 2·100·1 ≫ 0.7, so model 1 goes on ...
    assert [d[1] for d in decisions] == [None] * 4
    # ... until the lr left is small: at step 998, 2·100·(2e-3) = 0.4 < 0.7.
    assert rule.observe(998, torch.tensor([0.5, -0.7, 0.5]))[1] == CANNOT_STORE
    rule.keep([1])
    assert rule.observe(999, torch.tensor([-0.7]))[0] == CANNOT_STORE


def test_rows_record_epochs_run_and_stop_reason_and_the_setting_off_runs_the_full_recipe():
    cell = {"method": "gd", "geometry": "spherical", "d": 8, "num_facts": 32, "seed": 0, "tied": True,
            "mapping": "permutation", "threshold": 1.0, "gd_epochs": 1500, "gd_lr": 1e-2}
    probes = [{"width": w} for w in (2, 6)]
    early = capacity.run_probes(cell, probes)  # the default: early stop on
    full = capacity.run_probes({**cell, EARLY_STOP: False}, probes)
    assert [r["success"] for r in early] == [r["success"] for r in full] == [False, True]
    assert [r["stop_reason"] for r in early] == [CANNOT_STORE, STORED]
    assert all(r["epochs_run"] < 1500 for r in early)
    assert [(r["stop_reason"], r["epochs_run"]) for r in full] == [(EPOCHS, 1500)] * 2


def test_old_probe_rows_without_stop_reason_still_read(tmp_path):
    store = Store(tmp_path)
    store.append("probes", "s", [{"cell_id": "a", "probe_id": "p1", "experiment": "capacity", "width": 3,
                                  "epochs_run": 10_000, "status": "ok"}])
    store.append("probes", "s", [{"cell_id": "a", "probe_id": "p2", "experiment": "capacity", "width": 4,
                                  "epochs_run": 2_549, "stop_reason": STORED, "status": "ok"}])
    rows = store.load("probes", "s").set_index("probe_id")
    assert pd.isna(rows.loc["p1", "stop_reason"]) and rows.loc["p2", "stop_reason"] == STORED


def test_search_early_stop_must_be_a_boolean(tiny_sweep):
    with pytest.raises(SpecError, match=r"search\.early_stop.*allowed: true or false"):
        load_spec(tiny_sweep(), ["search.early_stop=sometimes"])


@pytest.mark.slow
def test_a_sweep_with_early_stop_off_has_the_same_ids_and_widths(tiny_sweep, tmp_path):
    grid = ["grid.method=[gd]", "grid.num_facts=[24, 40]", "fixed.gd_epochs=1500", "fixed.gd_lr=0.01"]
    path = tiny_sweep("es")
    found = {}
    for on in (True, False):
        spec = load_spec(path, grid + [f"search.early_stop={str(on).lower()}", f"storage.root={tmp_path / str(on)}"])
        assert spec.early_stop is on
        run_sweep(spec, progress=False, executor="inline")
        store = Store(spec.results_root)
        found[on] = (store.load("cells", spec.name).set_index("cell_id")["min_width"].sort_index(),
                     store.load("probes", spec.name))
    pd.testing.assert_series_equal(found[True][0], found[False][0])  # same ids, same answers
    assert set(found[False][1]["stop_reason"]) <= {EPOCHS, LOSS}
    assert set(found[True][1]["stop_reason"]) & {STORED, CANNOT_STORE}
    assert found[True][1]["epochs_run"].sum() < found[False][1]["epochs_run"].sum()
