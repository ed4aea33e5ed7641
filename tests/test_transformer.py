"""The fact MLP inside the constrained one-layer Transformer (factmlp/transformer.py,
docs/science.md#inside-a-transformer)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from factmlp import factsets
from factmlp.evaluate import evaluate
from orchestrator.registry import every
from factmlp.experiments.transformer_capacity import EXPERIMENT as CAPACITY
from factmlp.experiments.transformer_capacity import FACTS
from factmlp.experiments.transformer_usability import EXPERIMENT as USABILITY
from factmlp.geometries import make_factset
from factmlp.methods import build_fact_mlp
from factmlp.transformer import (AttentionConfig, RecallTransformer, contexts, eval_tokens, fresh_permutation,
                                 make_vocab, pretrain_attention, recall, train_attention, usability)

torch.set_num_threads(1)
D, F = 32, 64
FAST = AttentionConfig(steps=400, lr=1e-2, batch=128, check_every=25, stop_recall=1.0, seed=0)


@pytest.fixture(scope="module")
def factset():
    return make_factset("spherical", D, F, 0)


@pytest.fixture(scope="module")
def mlp(factset):
    return build_fact_mlp("hebbian_whitened", factset, 256)


@pytest.fixture(scope="module")
def pretrained(factset):
    return pretrain_attention(factset, FAST)


def test_task_layout(factset):
    vocab = make_vocab(factset, num_junk=9)
    tokens = contexts(vocab, torch.arange(5), 9, torch.Generator().manual_seed(0))
    assert tokens.shape == (5, 20)
    assert (tokens[:, 9] == torch.arange(5)).all() and (tokens[:, -1] == vocab.query).all()
    junk = torch.cat([tokens[:, :9], tokens[:, 10:19]], dim=1)
    assert ((junk >= F) & (junk < F + 9)).all()
    # Fact tokens read in as keys and out as values; junk and Q are unit vectors shared by both tables.
    assert np.array_equal(vocab.inputs[:F], factset.keys) and np.array_equal(vocab.outputs[:F], factset.values)
    assert np.allclose(np.linalg.norm(vocab.inputs[F:], axis=1), 1.0)


def test_attention_is_a_convex_combination_of_embeddings(factset, mlp):
    """Value and output projections are the identity: with W_q = 0 attention averages the inputs."""
    model = RecallTransformer(make_vocab(factset), mlp)
    with torch.no_grad():
        model.wq.zero_()
    tokens, _ = eval_tokens(model.vocab, 9, 1, 0)
    assert torch.allclose(model.attend(tokens[:7]), model.embed[tokens[:7]].mean(dim=1), atol=1e-12)


@pytest.mark.parametrize("decode", ["facts", "vocab"])
def test_exact_key_recall_is_the_standalone_accuracy(factset, decode):
    """Fed the exact key, the Transformer's answer is the MLP's own decoding (over the same tokens)."""
    weak = build_fact_mlp("hebbian", factset, 64)  # an MLP that gets some facts wrong
    model = RecallTransformer(make_vocab(factset), weak, decode=decode)
    row = usability(model, factset, eps=(0.0,), jacobians=False)
    table = factset.values if decode == "facts" else model.vocab.outputs
    expected = evaluate(weak, factsets.FactSet(factset.keys, table, factset.mapping))["accuracy"]
    assert 0.2 < expected < 1.0
    assert row["recall_exact_key"] == pytest.approx(expected, abs=1e-12)
    assert row["recall_eps_0"] == pytest.approx(expected, abs=1e-12)


def test_only_attention_trains_and_the_inserted_mlp_stays_frozen(factset, mlp):
    original = {k: v.clone() for k, v in mlp.state_dict().items()}
    model = RecallTransformer(make_vocab(factset), mlp)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"wq", "wk"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = train_attention(model, factset.mapping, AttentionConfig(steps=30, lr=1e-2, batch=64, stop_recall=1.0))
    after = model.state_dict()
    assert stats["steps"] == 30
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name in ("wq", "wk")), name
    assert all(torch.equal(original[k], v) for k, v in mlp.state_dict().items())  # the caller's MLP untouched


def test_insert_then_train_reaches_recall(factset, mlp):
    model = RecallTransformer(make_vocab(factset), mlp)
    tokens, facts = eval_tokens(model.vocab, 9, 2, 5)
    labels = torch.as_tensor(factset.mapping)[facts]
    assert recall(model, tokens, labels) < 0.5  # the random attention mixes junk in
    train_attention(model, factset.mapping, AttentionConfig(steps=300, lr=1e-2, batch=128, check_every=25))
    assert recall(model, tokens, labels) >= 0.97


def test_swap_changes_recall_to_the_new_map(factset, pretrained):
    """Attention pretrained on copying; an MLP for a fresh permutation swapped in, no training."""
    model, stats = pretrained
    assert stats["train_recall"] >= 0.97
    fresh = factsets.FactSet(factset.keys, factset.values, fresh_permutation(F, 0))
    assert (fresh.mapping != factset.mapping).mean() > 0.9
    new_mlp = build_fact_mlp("hebbian_whitened", fresh, 256)
    swapped = model.with_mlp(new_mlp, make_vocab(fresh))
    assert torch.equal(swapped.wq, model.wq) and torch.equal(swapped.wk, model.wk)
    tokens, facts = eval_tokens(swapped.vocab, 9, 2, 3)
    assert recall(swapped, tokens, torch.as_tensor(fresh.mapping)[facts]) >= 0.97
    assert recall(swapped, tokens, torch.as_tensor(factset.mapping)[facts]) < 0.1
    old = model.with_mlp(build_fact_mlp("hebbian_whitened", factset, 256), make_vocab(factset))
    assert recall(old, tokens, torch.as_tensor(factset.mapping)[facts]) >= 0.97


def test_attention_noise_floor_and_query_noise(factset, pretrained, mlp):
    model = pretrained[0].with_mlp(mlp, make_vocab(factset))
    row = usability(model, factset, eps=(0.0, 0.05, 2.0), jacobian_keys=16)
    assert 0 < row["attn_error_mean"] < 0.2 and row["attn_key_weight_min"] > 0
    assert row["recall_eps_0"] == row["recall_exact_key"] == 1.0
    assert row["recall_eps_2"] < 0.5  # a query twice the key's length away is another point
    assert row["noise_scale"] == pytest.approx(np.sqrt(D / (F * np.log(F))))
    # The Lipschitz bound holds the measured Jacobian norms from above.
    assert row["jacobian_norm_max"] <= row["lipschitz_bound"] + 1e-9


def search_facts(stores, cell) -> tuple:
    """Drive one setting's F search on a synthetic 'F stores iff stores(F)'; (last step, observations, rounds)."""
    obs, rounds = {}, 0
    while (step := FACTS["transformer"].on(cell, obs)).next:
        rounds += 1
        assert all(f % cell["facts_step"] == 0 and cell["search_low"] <= f <= cell["search_high"] and f not in obs
                   for f in step.next)
        obs.update({f: stores(f) for f in step.next})
    return step, obs, rounds


def test_largest_facts_search_is_a_mirrored_bisection():
    cell = CAPACITY.resolve({"method": "hebbian", "d": 16, "width": 64, "search_low": 16, "search_high": 1024,
                             "facts_step": 16, "search_verify": False})
    for truth in (16, 48, 512, 1024, 0):
        step, obs, _ = search_facts(lambda f: f <= truth, cell)
        assert step.answer == (truth or None) and len(obs) <= 7  # 1 + log2(64 grid points)


@pytest.mark.parametrize("arity", [1, 3])
def test_verification_keeps_a_monotone_answer_in_at_most_one_more_round(arity):
    """On monotone success the verified search finds the plain answer, calls it monotone and stable,
    and probes the grid values just below it and two above the failure that closed its bracket."""
    cell = CAPACITY.resolve({"method": "hebbian", "d": 16, "width": 64, "search_low": 64, "search_high": 4096,
                             "facts_step": 64, "search_arity": arity})
    rng = np.random.default_rng(arity)
    for truth in [0, 64, 4096, *(64 * rng.integers(2, 64, 40))]:
        plain, _, plain_rounds = search_facts(lambda f: f <= truth, {**cell, "search_verify": False})
        step, obs, rounds = search_facts(lambda f: f <= truth, cell)
        assert step.answer == plain.answer == (truth or None) and step.monotone
        assert step.stable == step.answer and rounds <= plain_rounds + 1
        expected = {f for f in (truth - 64, truth - 128, truth + 128, truth + 192)
                    if max(64, truth / 2) <= f <= 4096} if truth else {128, 192}
        assert expected <= set(obs)


def test_the_verification_round_is_proposed_for_both_settings():
    cell = CAPACITY.resolve({"method": "hebbian", "d": 16, "width": 64, "search_low": 64, "search_high": 4096,
                             "facts_step": 64})
    # The transformer bisection closed on 640 (704 fails); the standalone one on nothing (64 fails).
    closed = [{"setting": "transformer", "num_facts": f, "recall": float(f <= 640)}
              for f in (64, 576, 640, 704, 832, 1088, 2112)] + [{"setting": "standalone", "num_facts": 64,
                                                                  "mlp_accuracy": 0.5}]
    assert CAPACITY.next_round({**cell, "search_verify": False}, closed) == []
    proposed = {(p["setting"], p["num_facts"]) for p in CAPACITY.next_round(cell, closed)}
    # 640 = 10 steps: 9 and 8 steps below (576 already probed), 12 and 13 above (832 already probed);
    # nothing stored alone: the two grid values above the failure at 64.
    assert proposed == {("transformer", 512), ("transformer", 768), ("standalone", 128), ("standalone", 192)}


def test_a_flicker_in_f_is_found_and_the_cell_flagged():
    """Recall inside the Transformer fails at F = 576 but reaches the bar at 640: the plain bisection
    stops at 512 and calls the cell monotone; the verification round probes 640, moves the answer there
    and flags the cell (summary, † note and findings), the F up to which every probe stored being 512."""
    cell = CAPACITY.resolve({"method": "hebbian", "d": 16, "width": 64, "search_low": 64, "search_high": 4096,
                             "facts_step": 64})

    def summarize(cell):
        results = []
        while probes := CAPACITY.next_round(cell, results):
            results += [{**p, "recall": float(p["num_facts"] <= 640 and p["num_facts"] != 576),
                         "mlp_accuracy": float(p["num_facts"] <= 1152)} for p in probes]
        return {**cell, **CAPACITY.summarize(cell, results)}

    plain = summarize({**cell, "search_verify": False})
    assert plain["max_facts"] == 512 and plain["monotone_transformer"] and not CAPACITY.reporting.cell_note(plain)
    verified = summarize(cell)
    assert verified["max_facts"] == 640 and verified["stable_facts"] == 512
    assert verified["monotone_transformer"] is False and verified["monotone_standalone"] is True
    assert verified["max_facts_standalone"] == verified["stable_facts_standalone"] == 1152
    assert CAPACITY.reporting.cell_note(verified).startswith("† non-monotone inside the Transformer: stores at 640")
    assert "every probed F up to 512 stores" in CAPACITY.reporting.cell_note(verified)
    white = {**verified, "whiten": True, "monotone_transformer": True}
    text = CAPACITY.reporting.findings([verified, white], [])
    assert "† success was not monotone in F inside the Transformer in 1 of 2 cells (plain seed 0)" in text
    assert "not monotone in F alone" not in text
    # A failure far below the answer (as hebbian whitened seed 2 gave: 832 failed, 1088 stored): no F
    # within half of the answer up to which every probe stored, so no stable F.
    far = FACTS["transformer"].on(cell, {128: True, 832: False, 896: True, 960: True, 1024: False, 1088: True,
                                         1152: False, 1216: False, 1280: False})
    assert far.done and far.answer == 1088 and not far.monotone and far.stable is None


def test_capacity_cell_brackets_its_answers():
    """The capacity experiment end to end without Ray: each reported F stored, the next grid F not."""
    cell = CAPACITY.resolve({"method": "hebbian", "whiten": True, "d": 16, "width": 32, "search_low": 16,
                             "search_high": 256, "facts_step": 16, "attn_steps": 150, "eval_repeats": 1,
                             "check_every": 25})
    results = []
    while probes := CAPACITY.next_round(cell, results):
        results += [{**p, **r} for p, r in zip(probes, CAPACITY.run_probes(cell, probes))]
    summary = CAPACITY.summarize(cell, results)
    for setting, column, metric, threshold in (("transformer", "max_facts", "recall", cell["threshold"]),
                                               ("standalone", "max_facts_standalone", "mlp_accuracy",
                                                cell["standalone_threshold"])):
        got = {r["num_facts"]: r[metric] >= threshold for r in results if r["setting"] == setting}
        best = summary[column]
        assert best is not None and got[best] and (best == 256 or got[best + 16] is False)
        assert all(ok == (f <= best) for f, ok in got.items())  # monotone on what was probed
    assert summary["params"] == 3 * 16 * 32


def test_usability_findings_pair_plain_and_whitened_recall_per_f_for_the_schedules_run():
    """A sweep of one schedule (transformer_whitened_grid): no lines about the other, and per F the
    recall of each variant and plain − whitened paired by seed, in numeric order of F."""
    cells = [{"method": "encoder_decoder", "whiten": whiten, "d": 64, "num_facts": facts, "width": 512, "seed": seed,
              "swap_recall": 1.0 - 0.01 * seed - (0.02 + 0.001 * seed if whiten and facts == 128 else 0.0)}
             for whiten in (False, True) for facts in (1024, 128) for seed in range(3)]
    text = USABILITY.reporting.findings(cells, [])
    assert "insert" not in text
    assert "- > 99% recall, encoder_decoder whitened, d = 64, F = 128, width 512 (seeds 0, 1, 2), pretrained " in text
    assert ("- Whitening lowers recall, encoder_decoder, d = 64, F = 128, width 512, pretrained attention, MLP "
            "swapped in: holds. Recall(plain) − recall(whitened) = 0.021 [0.0185, 0.0235] over 3 seed(s)") in text
    assert ("F = 1024, width 512, pretrained attention, MLP swapped in: inconclusive — the 3 replicates are "
            "identical (0); the two MLPs recall the same facts in every seed") in text
    assert text.index("F = 128,") < text.index("F = 1024,")


def test_bad_cells_fail_with_the_key_named():
    with pytest.raises(ValueError, match="whiten"):
        USABILITY.resolve({"method": "gd", "whiten": True, "d": 8, "num_facts": 16, "width": 8})
    with pytest.raises(ValueError, match="schedule"):
        USABILITY.resolve({"method": "hebbian", "d": 8, "num_facts": 16, "width": 8, "schedule": "later"})
    with pytest.raises(ValueError, match="geometry"):
        CAPACITY.resolve({"method": "hebbian", "d": 8, "width": 8, "geometry": "gaussian"})
    with pytest.raises(ValueError, match="search_high"):
        CAPACITY.resolve({"method": "hebbian", "d": 8, "width": 8, "search_low": 64, "search_high": 32})
    assert {"transformer_usability", "transformer_capacity"} <= set(every())


def test_whiten_builds_the_variant_each_method_declares(factset):
    """hebbian → the hebbian_whitened method (with its options); encoder_decoder → its code_whiten option,
    which whiten alone sets (the experiments have no encoder_decoder_code_whiten)."""
    from factmlp.experiments.transformer_schedules import build_mlp

    base = {"d": D, "num_facts": F, "width": 96}
    plain = USABILITY.resolve({**base, "method": "hebbian", "hebbian_whitened_ridge": 1e-3})
    white = USABILITY.resolve({**base, "method": "hebbian", "whiten": True, "hebbian_whitened_ridge": 1e-3})
    assert "hebbian_whitened_ridge" not in plain and white["hebbian_whitened_ridge"] == 1e-3
    expected = build_fact_mlp("hebbian_whitened", factset, 96, options={"ridge": 1e-3})
    assert torch.equal(build_mlp(white, factset).down, expected.down)
    assert "encoder_decoder_code_whiten" not in USABILITY.params
    cell = USABILITY.resolve({**base, "method": "encoder_decoder", "whiten": True})
    expected = build_fact_mlp("encoder_decoder", factset, 96, options={"code_whiten": True})
    assert torch.equal(build_mlp(cell, factset).decoder, expected.decoder)
    assert not torch.equal(build_mlp({**cell, "whiten": False}, factset).decoder, expected.decoder)


SWEEP = """
name: {name}
experiment: transformer_usability
fixed: {{d: 16, num_facts: 32, attn_steps: 100, eval_repeats: 1, check_every: 25}}
grid:
  method: [hebbian]
  whiten: [true]
  width: [128]
packing: {{probes_per_task: 2}}
storage: {{root: {root}}}
"""


def test_tiny_usability_sweep(tmp_path, shared_tracking):
    from orchestrator.runner import run_sweep
    from orchestrator.spec import load_spec
    from orchestrator.store import Store

    path = tmp_path / "tu.yaml"
    path.write_text(textwrap.dedent(SWEEP.format(name="tu", root=tmp_path / "results")))
    spec = load_spec(path, [shared_tracking])
    report = run_sweep(spec, progress=False, executor="inline")  # the executor is not what this tests: no Ray
    assert (report.cells, report.cells_done, report.probes_failed) == (1, 1, 0)
    cells = Store(spec.results_root).load("cells", "tu")
    probes = Store(spec.results_root).load("probes", "tu")
    assert set(probes["schedule"]) == {"insert_then_train", "pretrain_then_swap"} and len(probes) == 2
    for row in cells.to_dict("records"):
        assert 0.0 <= row["insert_recall"] <= 1.0 and 0.0 <= row["swap_recall"] <= 1.0
        assert row["params"] == 3 * 16 * 128


def test_the_transformer_studies_take_their_methods_from_the_registry():
    """Every registered method is a choice, but a whitened variant that is a method of its own
    (hebbian_whitened), which ``whiten`` reaches from the method it belongs to."""
    from factmlp.experiments.transformer_schedules import COMMON, VARIANTS
    from factmlp.methods import METHODS
    assert COMMON["method"].choices == ("gd", "data_dependent", "encoder_decoder", "hebbian", "ntk")
    assert set(COMMON["method"].choices) | {"hebbian_whitened"} == set(METHODS)
    assert VARIANTS["hebbian"].method == "hebbian_whitened" and VARIANTS["encoder_decoder"].options == {"code_whiten": True}
