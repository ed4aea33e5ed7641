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
from factmlp.experiments.transformer_capacity import largest_facts
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


def test_largest_facts_search_is_a_mirrored_bisection():
    cell = CAPACITY.resolve({"method": "hebbian", "d": 16, "width": 64, "search_low": 16, "search_high": 1024,
                             "facts_step": 16})
    for truth in (16, 48, 512, 1024, 0):
        obs = {}
        while True:
            nxt, best = largest_facts(obs, cell)
            if not nxt:
                break
            obs.update({f: f <= truth for f in nxt})
            assert all(f % 16 == 0 and 16 <= f <= 1024 for f in nxt)
        assert best == (truth or None) and len(obs) <= 7  # 1 + log2(64 grid points)


def test_capacity_cell_brackets_its_answers():
    """The capacity experiment end to end without Ray: each reported F stored, the next grid F not."""
    cell = CAPACITY.resolve({"method": "hebbian", "whiten": True, "d": 16, "width": 32, "search_low": 16,
                             "search_high": 256, "facts_step": 16, "attn_steps": 150, "eval_repeats": 1,
                             "check_every": 25})
    results = []
    while probes := CAPACITY.next_probes(cell, results):
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


def test_tiny_usability_sweep(ray_session, tmp_path, shared_tracking):
    from orchestrator.runner import run_sweep
    from orchestrator.spec import load_spec
    from orchestrator.store import Store

    path = tmp_path / "tu.yaml"
    path.write_text(textwrap.dedent(SWEEP.format(name="tu", root=tmp_path / "results")))
    spec = load_spec(path, [shared_tracking])
    report = run_sweep(spec, progress=False)
    assert (report.cells, report.cells_done, report.probes_failed) == (1, 1, 0)
    cells = Store(spec.results_root).load("cells", "tu")
    probes = Store(spec.results_root).load("probes", "tu")
    assert set(probes["schedule"]) == {"insert_then_train", "pretrain_then_swap"} and len(probes) == 2
    for row in cells.to_dict("records"):
        assert 0.0 <= row["insert_recall"] <= 1.0 and 0.0 <= row["swap_recall"] <= 1.0
        assert row["params"] == 3 * 16 * 128
