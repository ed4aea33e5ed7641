"""Fact editing (factmlp.editing, experiment fact_editing): properties that fail if the math is wrong."""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from factmlp.editing import Bench, LMConfig, choose_edits, fine_tune, make_task, rank_one, swap, train_lm
from factmlp.editing.edits import (EDIT_METHODS, FineTuneOptions, RankOneOptions, batch_update, key_covariance,
                                   rank_one_update, target_outputs)
from factmlp.editing.metrics import Readout, correct, edit_metrics, harmonic_mean, target_log_prob, text_nll
from factmlp.editing.task import A, S, TEMPLATES, non_fact_mask, render
from factmlp.editing.tuning import GRIDS, describe, split_facts, tuned_edit
from orchestrator.registry import every

torch.set_num_threads(1)
TINY = dict(num_facts=24, d=16, width=48, method="hebbian_whitened")


@pytest.fixture(scope="module")
def tiny():
    """A tiny trained model whose fact MLP stores every fact, and its bench (a few seconds)."""
    task = make_task(TINY["num_facts"], 0, TINY["d"], 0, filler_length=4, num_filler_words=8,
                     word_fact_embeddings="zero")  # the MLP input is then exactly (attention on S)·k_S
    mlp = swap(task, task.mapping, TINY["method"], TINY["width"], 0)
    model, history = train_lm(task, mlp, LMConfig(steps=150, batch=32, lr=1e-2, model_dim=32, head_dim=16))
    rebuild = functools.partial(swap, task, method=TINY["method"], width=TINY["width"], seed=0)
    return task, Bench.build(task, model, text_sequences=32, rebuild=rebuild)


def predictions(bench: Bench, mlp) -> np.ndarray:
    """Predicted attribute (or -1 when a non-attribute token wins) for every (fact, template) prompt."""
    from factmlp.editing.metrics import attribute_logits
    logits = attribute_logits(mlp, bench.scale, bench.values, bench.prompts)
    best = logits.max(dim=1)
    pred = torch.where(best.values > bench.prompts.other_max.double(), best.indices, -1)
    return pred.numpy().reshape(bench.task.num_facts, len(bench.task.templates))


def test_templates_split_disjointly_and_render_the_fact():
    assert len(TEMPLATES) >= 8
    task = make_task(16, 0, 8, 3)
    edit, para = set(task.edit_templates), set(task.paraphrase_templates)
    assert not edit & para and edit | para == set(range(len(TEMPLATES))) and len(para) == len(TEMPLATES) - 6
    for t in TEMPLATES:
        assert t.count(S) == 1 and t.count(A) == 1 and t[-1] == A and t.index(S) < t.index(A)
    facts, templates = np.arange(16), np.arange(16) % len(TEMPLATES)
    batch = render(task, facts, templates, np.random.default_rng(0))
    assert batch.tokens.shape == (16, task.seq_len)
    rows = np.arange(16)
    assert (batch.tokens[rows, batch.query_pos + 1] == task.attribute_token(task.mapping[facts])).all()
    assert (batch.tokens == task.subject_token(facts)[:, None]).sum(axis=1).tolist() == [1] * 16
    mask = non_fact_mask(task, batch.tokens)
    assert not mask[rows, batch.query_pos].any() and mask.sum() > 0  # attribute targets are excluded


def test_metrics_on_a_hand_checked_case():
    attr = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]], dtype=torch.float64)
    # Row 0: target 0 wins (2 > 1, 2 > 1.5). Row 1: target 1 loses to a non-attribute token (3 < 3.5).
    # Row 2: target 1 loses to attribute 0.
    hits = correct(attr, torch.tensor([1.5, 3.5, 0.0]), [0, 1, 1])
    assert hits.tolist() == [True, False, False]
    logp = target_log_prob(attr[:1], torch.tensor([math.log(3.0)]), [0])
    assert logp.item() == pytest.approx(2.0 - math.log(math.e ** 2 + math.e + 3.0))
    readout = Readout(z=torch.zeros(1, 1), attr=torch.zeros(1), other_max=torch.zeros(1),
                      other_lse=torch.tensor([math.log(2.0)]), target_logit=torch.tensor([0.0]))
    nll = text_nll(torch.zeros(1, 2, dtype=torch.float64), readout)  # p(target) = 1 / (2 + 2)
    assert nll.item() == pytest.approx(math.log(4.0))
    assert harmonic_mean([1.0, 0.5, 1.0]) == pytest.approx(0.75) and harmonic_mean([1.0, 0.0, 1.0]) == 0.0
    m = edit_metrics(efficacy_hits=[1, 1], paraphrase_hits=[1, 0], specificity_hits=[1, 1, 1, 1],
                     nll_after=[math.log(4.0)], nll_before=[math.log(2.0)])
    assert (m["efficacy"], m["paraphrase"], m["specificity"]) == (1.0, 0.5, 1.0)
    assert m["score"] == pytest.approx(0.75) and m["ppl_ratio"] == pytest.approx(2.0)


def test_rank_one_update_maps_the_key_and_spares_c_orthogonal_keys():
    gen = torch.Generator().manual_seed(0)
    d, m = 5, 9
    down, key, value = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((d, m), (m,), (d,)))
    a = torch.randn(m, m, generator=gen, dtype=torch.float64)
    cov_inv = torch.linalg.inv(a @ a.T + torch.eye(m, dtype=torch.float64))
    new = rank_one_update(down, key, value, cov_inv)
    assert torch.allclose(new @ key, value, atol=1e-10)
    assert torch.linalg.matrix_rank(new - down) == 1
    # Keys u with uᵀC⁻¹k = 0 keep their outputs: the update only moves along C⁻¹k.
    u = torch.randn(m, generator=gen, dtype=torch.float64)
    direction = cov_inv @ key
    u = u - (u @ direction) / (key @ direction) * key  # now u·C⁻¹k = 0
    assert torch.allclose(new @ u, down @ u, atol=1e-10)


def test_batch_update_hits_every_edit_and_reduces_to_rank_one():
    gen = torch.Generator().manual_seed(1)
    d, m, e = 4, 7, 3
    down, keys, values = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((d, m), (e, m), (e, d)))
    a = torch.randn(m, m, generator=gen, dtype=torch.float64)
    cov_inv = torch.linalg.inv(a @ a.T / m + 0.1 * torch.eye(m, dtype=torch.float64))
    new = batch_update(down, keys, values, cov_inv, rtol=1e-12)
    assert torch.allclose(keys @ new.T, values, atol=1e-9)
    assert torch.linalg.matrix_rank(new - down) == e
    assert torch.allclose(batch_update(down, keys[:1], values[:1], cov_inv, rtol=1e-12),
                          rank_one_update(down, keys[0], values[0], cov_inv), atol=1e-10)
    # Least change in the C-weighted norm: adding any ΔD' with ΔD' K = 0 only makes it larger.
    base = new - down
    null = torch.randn(d, m, generator=gen, dtype=torch.float64)
    null = null - null @ keys.T @ torch.linalg.solve(keys @ keys.T, keys)  # null @ kᵀ = 0 for every key
    cost = lambda x: torch.trace(x @ torch.linalg.inv(cov_inv) @ x.T)  # noqa: E731
    assert cost(base) < cost(base + 0.1 * null)


def test_base_model_stores_every_fact_and_the_readout_matches_the_full_forward(tiny):
    task, bench = tiny
    assert (predictions(bench, bench.model.mlp) == task.mapping[:, None]).all()
    batch = bench.prompt_batch
    with torch.no_grad():
        full = bench.model(torch.as_tensor(batch.tokens))[np.arange(len(batch.tokens)), batch.query_pos]
    from factmlp.editing.metrics import attribute_logits
    readout = bench.prompts
    assert (batch.fact == np.repeat(np.arange(task.num_facts), len(task.templates))).all()
    fast = attribute_logits(bench.model.mlp, bench.scale, bench.values, readout)
    assert torch.allclose(full[:, -task.num_attributes:].double(), fast, atol=1e-3)


def test_swap_changes_exactly_the_edited_facts(tiny):
    task, bench = tiny
    edited, mapping = choose_edits(task, 0.25, 0)
    assert len(edited) == 6 and (mapping[edited] != task.mapping[edited]).all()
    assert (np.delete(mapping, edited) == np.delete(task.mapping, edited)).all()
    new = EDIT_METHODS["swap"].edit(bench, edited, mapping)  # the bench's own recipe, for the edited map
    for a, b in zip(new.parameters(), swap(task, mapping, TINY["method"], TINY["width"], 0).parameters()):
        assert torch.equal(a, b)
    before, after = predictions(bench, bench.model.mlp), predictions(bench, new)
    changed = np.flatnonzero((before != after).any(axis=1))
    assert changed.tolist() == edited.tolist()
    assert (after == mapping[:, None]).all()  # every template, paraphrases included
    scores = bench.score(new, edited, mapping)
    assert scores["score"] == 1.0 and scores["old_kept"] == 0.0 and abs(scores["ppl_ratio"] - 1) < 0.05
    # Dropped into the real model, the swapped MLP gives the same predictions.
    bench.model.swap_mlp(new)
    try:
        batch = render(task, edited, np.full(len(edited), task.paraphrase_templates[0]), np.random.default_rng(1))
        with torch.no_grad():
            logits = bench.model(torch.as_tensor(batch.tokens))[np.arange(len(edited)), batch.query_pos]
        assert (logits.argmax(dim=1).numpy() == task.attribute_token(mapping[edited])).all()
    finally:
        bench.model.swap_mlp(bench_mlp_original(tiny))


def bench_mlp_original(tiny):
    task, _ = tiny
    return swap(task, task.mapping, TINY["method"], TINY["width"], 0)


def test_rank_one_edit_hits_its_target_outputs(tiny):
    task, bench = tiny
    edited, mapping = choose_edits(task, 0.1, 1)
    old = bench.model.mlp
    new = rank_one(bench, edited, mapping, RankOneOptions(ridge=1e-3))
    z = bench.prompts.take(bench.prompt_index(edited, task.edit_templates)).z.double()
    keys = old.hidden(z).view(len(edited), len(task.edit_templates), -1).mean(dim=1)
    delta = target_outputs(bench, old, edited, mapping)
    expected = keys @ old.effective_down().double().T + delta
    # Sequential edits: the last edited key maps to its target exactly, earlier ones nearly (C⁻¹-orthogonality).
    got = keys @ new.effective_down().double().T
    assert torch.allclose(got[-1], expected[-1], atol=1e-8)
    assert torch.allclose(got, expected, atol=1e-2 * float(expected.norm(dim=1).max()))
    assert bench.score(new, edited, mapping)["efficacy"] == 1.0
    assert key_covariance(old, z, 1e-3).shape == (TINY["width"], TINY["width"])


def test_fine_tune_reaches_the_edit_and_leaves_the_base_model_alone(tiny):
    task, bench = tiny
    before = [p.clone() for p in bench.model.mlp.parameters()]
    edited, mapping = choose_edits(task, 0.1, 2)
    new, steps = fine_tune(bench, edited, mapping, FineTuneOptions(steps=300, lr=1e-2, replay=False))
    assert bench.score(new, edited, mapping)["efficacy"] == 1.0 and steps < 300  # stops once the edit is right
    assert all(torch.equal(a, b) for a, b in zip(before, bench.model.mlp.parameters()))


def test_fine_tune_with_replay_keeps_the_untouched_facts(tiny, one_torch_thread):
    """Replay (the default) fits the whole edited table, as the swap does: at a learning rate where
    fine-tuning on the edits alone wrecks the other facts, replay keeps them, and reaches the edit too."""
    task, bench = tiny
    edited, mapping = choose_edits(task, 0.25, 0)
    alone, _ = fine_tune(bench, edited, mapping, FineTuneOptions(steps=200, lr=3e-2, replay=False))
    replayed, steps = fine_tune(bench, edited, mapping, FineTuneOptions(steps=200, lr=3e-2, seed=1))
    without, with_replay = bench.score(alone, edited, mapping), bench.score(replayed, edited, mapping)
    assert without["efficacy"] == with_replay["efficacy"] == 1.0 and steps == 200
    assert with_replay["specificity"] > without["specificity"] + 0.2 and with_replay["specificity"] == 1.0
    again, _ = fine_tune(bench, edited, mapping, FineTuneOptions(steps=200, lr=3e-2, seed=1))  # the replayed batches are seeded
    assert all(torch.equal(a, b) for a, b in zip(replayed.parameters(), again.parameters()))


def test_split_halves_the_edited_and_the_untouched_facts_and_the_text():
    task = make_task(40, 0, 8, 1)
    edited, _ = choose_edits(task, 0.25, 3)
    split = split_facts(task, edited, 50, 3)
    assert not set(split.tune) & set(split.evaluate) and len(split.tune) + len(split.evaluate) == 40
    assert len(np.intersect1d(split.tune, edited)) == 5 and len(np.intersect1d(split.evaluate, edited)) == 5
    assert len(split.text_tune) == 25 and sorted([*split.text_tune, *split.text_evaluate]) == list(range(50))
    assert split_facts(task, edited, 50, 3).tune.tolist() == split.tune.tolist()  # seeded by the draw
    with pytest.raises(ValueError, match="at least 2 edited facts"):
        split_facts(task, edited[:1], 50, 3)


def test_the_setting_is_picked_on_the_tuning_half_only(tiny, one_torch_thread):
    """Wrecking the evaluation half's held-out prompts (paraphrase templates, which no edit reads)
    changes the reported metrics but neither the picked setting nor its tuning score."""
    task, bench = tiny
    edited, mapping = choose_edits(task, 0.25, 1)
    split = split_facts(task, edited, len(bench.text.z), 1)
    rows = bench.prompt_index(split.evaluate, task.paraphrase_templates)
    other_max = bench.prompts.other_max.clone()
    other_max[rows] = 1e9  # no attribute can win these prompts any more
    wrecked = dataclasses.replace(bench, prompts=dataclasses.replace(bench.prompts, other_max=other_max))
    grid = ({"lr": 1e-3, "steps": 20}, {"lr": 3e-2, "steps": 60})
    for method, settings, options in (("batch_rank_one", GRIDS["batch_rank_one"], None),
                                      ("fine_tune", grid, {"replay": False})):
        picked = tuned_edit(bench, method, edited, mapping, split, settings, options)
        again = tuned_edit(wrecked, method, edited, mapping, split, settings, options)
        assert picked.setting == again.setting and picked.tune_score == again.tune_score
        assert picked.setting in settings
        honest = bench.score(picked.mlp, edited, mapping, facts=split.evaluate)
        assert wrecked.score(again.mlp, edited, mapping, facts=split.evaluate)["score"] < honest["score"]
    assert picked.setting == grid[1]  # fine_tune: 20 steps at lr 1e-3 do not reach the edit


def test_a_cell_carries_the_options_of_its_fact_mlp_only():
    experiment = every()["fact_editing"]
    gd = experiment.resolve({"edit_method": "swap", "hebbian_whitened_ridge": 1e-3})
    assert (gd["gd_epochs"], gd["gd_lr"]) == (3000, 1e-2) and "hebbian_whitened_ridge" not in gd
    memory = experiment.resolve({"edit_method": "swap", "fact_mlp": "hebbian_whitened", "hebbian_whitened_ridge": 1e-3})
    assert memory["hebbian_whitened_ridge"] == 1e-3 and not any(k.startswith("gd_") for k in memory)


def test_edit_options_are_typed_and_reach_the_editor_under_their_committed_names():
    """Each edit method's typed options are the experiment's parameters, named ``ft_*``, ``rome_*`` (shared by
    both rank-one edits) and ``batch_*`` with the defaults the committed study's cell ids were made with."""
    from factmlp.experiments.editing import edit_options
    experiment = every()["fact_editing"]
    assert experiment.params["edit_method"].choices == tuple(EDIT_METHODS) == (
        "swap", "fine_tune", "rank_one", "batch_rank_one")
    own = {k: p.default for k, p in experiment.params.items() if k.startswith(("ft_", "rome_", "batch_"))}
    assert own == {"ft_steps": 500, "ft_lr": 1e-3, "ft_weights": "all", "ft_replay": True, "ft_replay_batch": 256,
                   "rome_ridge": 1e-3, "rome_steps": 200, "rome_lr": 0.05, "rome_prob": 0.95, "batch_rtol": 1e-2}
    assert all(experiment.params[k].methods is None for k in own)  # every cell carries them, as before
    cell = experiment.resolve({"edit_method": "batch_rank_one", "rome_steps": 7, "batch_rtol": 0.5, "ft_lr": 0.1})
    assert edit_options(cell, 3) == EDIT_METHODS["batch_rank_one"].options(ridge=1e-3, steps=7, lr=0.05, prob=0.95,
                                                                             rtol=0.5)
    tuned = edit_options(experiment.resolve({"edit_method": "fine_tune", "ft_lr": 0.1, "ft_weights": "down"}), 3)
    assert tuned == FineTuneOptions(lr=0.1, weights="down", seed=3)  # the draw seeds the replayed batches
    with pytest.raises(ValueError, match="ft_weights"):
        experiment.resolve({"edit_method": "fine_tune", "ft_weights": "up"})
    with pytest.raises(ValueError, match="weights"):
        FineTuneOptions(weights="up")
    for method, grid in GRIDS.items():  # every grid setting names options of its method, with allowed values
        for setting in grid:
            EDIT_METHODS[method].options(**setting)  # raises on an unknown name or a bad value


def test_bad_parameters_are_rejected_with_the_key():
    experiment = every()["fact_editing"]
    assert experiment.resolve({"edit_method": "swap"})["edit_fraction"] == 0.1
    for bad in ({"edit_method": "rome"}, {"edit_method": "swap", "edit_fraction": 0.0},
                {"edit_method": "swap", "num_edit_templates": len(TEMPLATES)},
                {"edit_method": "swap", "fact_mlp": "nope"}):
        with pytest.raises(ValueError, match=next(k for k in bad if k != "edit_method" or len(bad) == 1)):
            experiment.resolve(bad)


def test_the_sweep_gives_ten_seeds_to_two_percent_edits():
    from orchestrator.spec import load_spec
    spec = load_spec(Path(__file__).parents[1] / "sweeps" / "fact_editing.yaml")
    seeds = {}
    for cell in spec.cells:
        seeds.setdefault((cell["fact_mlp"], cell["edit_fraction"], cell["edit_method"]), set()).add(cell["seed"])
    assert len(seeds) == 2 * 3 * 4
    for (fact_mlp, fraction, _), got in seeds.items():
        assert got == (set(range(10)) if (fact_mlp, fraction) == ("gd", 0.02) else {0, 1, 2})


SWEEP = """
name: {name}
experiment: fact_editing
fixed:
  num_facts: 16
  d: 8
  fact_mlp: hebbian_whitened
  width: 32
  lm_steps: 40
  lm_batch: 16
  model_dim: 16
  head_dim: 8
  filler_length: 4
  filler_words: 8
  text_sequences: 8
  edit_fraction: 0.25
  draws: 2
grid:
  edit_method: [swap, fine_tune, rank_one]
packing: {{probes_per_task: 2}}
storage: {{root: {root}}}
"""


def test_tiny_sweep_through_the_orchestrator(tmp_path, shared_tracking, one_torch_thread):
    from orchestrator.report import write_report
    from orchestrator.runner import run_sweep
    from orchestrator.scope import Scope
    from orchestrator.spec import load_spec
    from orchestrator.store import Store

    path = tmp_path / "edit.yaml"
    path.write_text(SWEEP.format(name="edit", root=tmp_path / "results"))
    spec = load_spec(path, [shared_tracking])
    report = run_sweep(spec, progress=False, executor="inline")  # the executor is not what this tests: no Ray
    assert (report.cells, report.cells_done, report.probes_failed) == (3, 3, 0)
    cells = Store(spec.results_root).load("cells", "edit")
    probes = Store(spec.results_root).load("probes", "edit")
    assert sorted(cells["edit_method"]) == ["fine_tune", "rank_one", "swap"] and len(probes) == 6
    for row in cells.to_dict("records"):
        mine = probes[probes["cell_id"] == row["cell_id"]]
        assert row["score"] == pytest.approx(mine["score"].mean()) and (row["edits"], row["eval_edits"]) == (4, 2)
        if row["edit_method"] != "swap":  # the picked setting is recorded, as a string and as numbers
            assert all(s in [describe(g) for g in GRIDS[row["edit_method"]]] for s in mine["tuned_setting"])
            assert mine["tuned_ridge" if row["edit_method"] == "rank_one" else "tuned_lr"].notna().all()
            assert str(row["tuned_setting"]).endswith("×2") or ";" in str(row["tuned_setting"])
    for probe in probes.to_dict("records"):  # a harmonic mean lies between the smallest value and the mean
        parts = [probe["efficacy"], probe["paraphrase"], probe["specificity"]]
        assert min(parts) - 1e-12 <= probe["score"] <= sum(parts) / 3 + 1e-12
    # One draw gives every method the same edited facts, so the base model numbers agree across cells.
    assert probes["base_accuracy"].nunique() == 1
    _, md, table = write_report(Scope.of_spec(spec), n_boot=10)
    assert len(table) == 3 and "ppl_ratio" in table and "swap" in md.read_text()
    assert "held-out evaluation half" in md.read_text() and "picked on the tuning half: " in md.read_text()
