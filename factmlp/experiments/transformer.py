"""Fact MLPs inside a Transformer (SCIENCE.md §8): usability at a fixed width, and capacity in facts.

``transformer_usability``: a cell is (method, whitening, d, F, width, ...); its probes are the two
schedules (insert-then-train-attention, pretrain-attention-then-swap-in an MLP for a fresh
permutation). Each probe records recall inside the Transformer and the usability metrics of the MLP
(γ, Lipschitz, recall under query noise, the attention noise floor).

``transformer_capacity``: a cell fixes the width; a probe is one number of facts F (in one of two
settings, the Transformer schedule or the MLP standalone), and a pure search finds the largest F
that each setting stores at the threshold. Capacity in the Transformer against capacity alone shows
the capacity–usability tradeoff in one number per cell.
"""
from __future__ import annotations

import functools
import time

import numpy as np
import torch

from factmlp import constructions, factsets
from factmlp.capacity import check_search_range
from factmlp.evaluate import evaluate
from factmlp.experiments.base import Experiment, FigureSpec, Param
from factmlp.train import TrainConfig, train_batched
from factmlp.transformer import (DECODES, AttentionConfig, RecallTransformer, fresh_permutation, make_vocab,
                                 pretrain_attention, train_attention, usability)

METHODS = ("gd", "hebbian", "encoder_decoder", "ntk", "data_dependent")
WHITENABLE = ("hebbian", "encoder_decoder")
SCHEDULES = ("insert_then_train", "pretrain_then_swap")
SHORT = {"insert_then_train": "insert", "pretrain_then_swap": "swap"}
DTYPES = {"float64": torch.float64, "float32": torch.float32}

COMMON = {
    "method": Param(str, choices=METHODS, doc="gd or a construction"),
    "whiten": Param(bool, False, doc="the method's whitened variant: hebbian -> hebbian_whitened (ridge "
                                     "readout), encoder_decoder -> codes in the whitened value geometry"),
    "geometry": Param(str, "spherical", choices=("spherical", "spike"), doc="unit-norm keys only (the frozen norm)"),
    "beta": Param(float, 0.0, low=0.0, high=1e3, doc="spike strength (geometry spike)"),
    "d": Param(int, low=2, high=1 << 14, doc="embedding dimension"),
    "width": Param(int, low=1, high=1 << 20, doc="hidden width m of the fact MLP"),
    "seed": Param(int, 0, low=0, doc="fact-set, junk, attention-init and sampling seed"),
    "num_junk": Param(int, 9, low=1, high=4096, doc="J junk token types"),
    "junk_len": Param(int, 9, low=1, high=4096, doc="L junk tokens before and after the key"),
    "attn_steps": Param(int, 2000, low=0, doc="most AdamW steps for W_q, W_k"),
    "attn_lr": Param(float, 1e-2, low=0.0, low_open=True, doc="AdamW learning rate (paper: 2e-4)"),
    "attn_weight_decay": Param(float, 0.1, low=0.0),
    "attn_batch": Param(int, 256, low=1, high=1 << 20, doc="sequences per step (paper: 1280)"),
    "stop_recall": Param(float, 0.995, low=0.0, high=1.0,
                         doc="attention training stops once recall on one junk draw per fact reaches this (paper: "
                             "0.99; 0.995 by default because that check's sampling error is ±0.4% at F = 512)"),
    "check_every": Param(int, 50, low=1, doc="steps between recall checks"),
    "eval_repeats": Param(int, 4, low=1, high=1024, doc="junk draws per fact when measuring recall"),
    "dtype": Param(str, "float64", choices=tuple(DTYPES), doc="the Transformer's arithmetic"),
    "decode": Param(str, "vocab", choices=DECODES, doc="argmax over every token (an LM) or the fact tokens only"),
    "epochs": Param(int, 3000, low=1, doc="gd: epochs of the standalone MLP training"),
    "lr": Param(float, 1e-2, low=0.0, low_open=True, doc="gd: Adam learning rate"),
    "ridge": Param(float, 1e-6, low=0.0, doc="ridge λ of hebbian_whitened and data_dependent"),
    "cg_iters": Param(int, 10, low=0, doc="data_dependent: CG steps per factor fit"),
    "hermite_degree": Param(int, 1, low=0, high=64, doc="ntk: Hermite degree"),
}

EPS = (0.05, 0.1, 0.2)
LABELS = {"params": "MLP parameters, W", "swap_recall": "recall after swap-in (pretrain-then-swap)",
          "jacobian_rel_max": "max relative Jacobian norm ‖J(k)‖·‖k‖/‖g(k)‖",
          "recall_eps_0p1": "recall under query noise ε = 0.1", "whiten": "whitened",
          "max_facts": "facts recalled inside the Transformer", "max_facts_standalone": "facts stored standalone",
          "method": "method", "width": "hidden width, m"}


def _check_whiten(cell: dict) -> None:
    if cell["whiten"] and cell["method"] not in WHITENABLE:
        raise ValueError(f"whiten: got True with method {cell['method']!r}; allowed: True only with "
                         f"{', '.join(WHITENABLE)}")
    if cell["beta"] and cell["geometry"] != "spike":
        raise ValueError(f"beta: got {cell['beta']} with geometry {cell['geometry']!r}; "
                         "allowed: 0 unless geometry spike")


@functools.lru_cache(maxsize=8)
def _factset(geometry: str, beta: float, d: int, num_facts: int, seed: int) -> factsets.FactSet:
    return factsets.make_factset(geometry, d, num_facts, seed, beta=beta)


def _factset_of(cell: dict, num_facts: int) -> factsets.FactSet:
    return _factset(cell["geometry"], cell["beta"], cell["d"], num_facts, cell["seed"])


def _attention_config(cell: dict) -> AttentionConfig:
    return AttentionConfig(steps=cell["attn_steps"], lr=cell["attn_lr"], weight_decay=cell["attn_weight_decay"],
                           batch=cell["attn_batch"], stop_recall=cell["stop_recall"],
                           check_every=cell["check_every"], junk_len=cell["junk_len"], seed=cell["seed"])


def build_mlp(cell: dict, factset: factsets.FactSet) -> torch.nn.Module:
    """The fact MLP of the cell's method for this fact set (GD trains it standalone first)."""
    method, width = cell["method"], cell["width"]
    if method == "gd":
        config = TrainConfig(epochs=cell["epochs"], lr=cell["lr"], seed=cell["seed"], device="cpu")
        trained = train_batched(factset, [width], config)[0]
        if not np.isfinite(trained["loss"]):
            raise FloatingPointError(f"GD loss is {trained['loss']}; lower lr (now {cell['lr']})")
        return trained["model"]
    options = {}
    if method == "hebbian" and cell["whiten"]:
        method, options = "hebbian_whitened", {"ridge": cell["ridge"]}
    elif method == "encoder_decoder":
        options = {"whiten": cell["whiten"]}
    elif method == "data_dependent":
        options = {"ridge": cell["ridge"], "cg_iters": cell["cg_iters"]}
    elif method == "ntk":
        options = {"degree": cell["hermite_degree"]}
    return constructions.build(method, factset, width, seed=cell["seed"], **options)


@functools.lru_cache(maxsize=4)
def _pretrained(geometry, beta, d, num_facts, seed, num_junk, config: AttentionConfig, dtype: str, decode: str):
    """Schedule (b)'s attention depends on neither the method nor the width: train it once per worker."""
    return pretrain_attention(_factset(geometry, beta, d, num_facts, seed), config, num_junk=num_junk,
                              dtype=DTYPES[dtype], decode=decode)


def run_schedule(cell: dict, schedule: str, num_facts: int, *, metrics: bool = True) -> dict:
    """One schedule end to end; returns the flat row of recall and usability metrics."""
    torch.set_num_threads(1)
    base = _factset_of(cell, num_facts)
    config = _attention_config(cell)
    start = time.perf_counter()
    if schedule == "insert_then_train":
        factset = base
        mlp = build_mlp(cell, factset)
        build_seconds = time.perf_counter() - start
        model = RecallTransformer(make_vocab(factset, cell["num_junk"], cell["seed"]), mlp,
                                  seed=cell["seed"], dtype=DTYPES[cell["dtype"]], decode=cell["decode"])
        stats = train_attention(model, factset.mapping, config)
    elif schedule == "pretrain_then_swap":
        # Cached per worker: ``seconds`` includes pretraining only for the probe that ran it.
        pre, stats = _pretrained(cell["geometry"], cell["beta"], cell["d"], num_facts, cell["seed"],
                                 cell["num_junk"], config, cell["dtype"], cell["decode"])
        factset = factsets.FactSet(base.keys, base.values, fresh_permutation(num_facts, cell["seed"]))
        built = time.perf_counter()
        mlp = build_mlp(cell, factset)
        build_seconds = time.perf_counter() - built
        model = pre.with_mlp(mlp, make_vocab(factset, cell["num_junk"], cell["seed"]))
    else:
        raise ValueError(f"schedule: got {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    params = sum(p.numel() for p in mlp.parameters())
    standalone = evaluate(mlp, factset)["accuracy"]
    row = usability(model, factset, standalone, eps=EPS, repeats=cell["eval_repeats"], junk_len=cell["junk_len"],
                    seed=cell["seed"], jacobians=metrics)
    return {"params": params, "attn_steps_run": stats["steps"], "attn_train_recall": stats["train_recall"],
            "build_seconds": build_seconds, "seconds": time.perf_counter() - start, **row}


# --- transformer_usability -------------------------------------------------------------------------

USABILITY_PARAMS = {
    **COMMON,
    "num_facts": Param(int, low=2, high=1 << 22, doc="F"),
    "schedule": Param(str, "both", choices=("both",) + SCHEDULES, doc="which schedules the cell runs"),
}


def _schedules(cell: dict) -> tuple[str, ...]:
    return SCHEDULES if cell["schedule"] == "both" else (cell["schedule"],)


def usability_next(cell: dict, results: list[dict]) -> list[dict]:
    done = {r["schedule"] for r in results}
    return [{"schedule": s} for s in _schedules(cell) if s not in done]


def usability_run(cell: dict, probes: list[dict]) -> list[dict]:
    return [run_schedule(cell, p["schedule"], cell["num_facts"]) for p in probes]


MLP_COLUMNS = ("params", "mlp_accuracy", "margin_min", "lipschitz_bound", "jacobian_norm_max", "jacobian_rel_max",
               "noise_radius", "recall_exact_key") + tuple(f"recall_eps_{e:g}".replace(".", "p") for e in EPS)


def usability_summary(cell: dict, results: list[dict]) -> dict:
    """Recall, perfect-attention recall, the MLP's standalone accuracy and the attention noise per
    schedule (the swap MLP is another MLP, built for f′); the MLP's other metrics from the insert
    schedule's MLP."""
    by = {r["schedule"]: r for r in results}
    out = {}
    for schedule in SCHEDULES:
        r = by.get(schedule, {})
        for key in ("recall", "recall_exact_key", "mlp_accuracy", "attn_error_mean", "attn_error_max",
                    "attn_steps_run"):
            out[f"{SHORT[schedule]}_{key}"] = r.get(key)
    first = by.get("insert_then_train") or by.get("pretrain_then_swap") or {}
    out.update({k: first.get(k) for k in MLP_COLUMNS})
    out["noise_scale"] = first.get("noise_scale")
    out["usable"] = all(by[s]["recall"] >= cell["stop_recall"] for s in by) if by else None
    return out


def usability_findings(cells: list[dict], fits: list[dict]) -> str:
    """Whitened against plain, per method and width: capacity-side and usability-side numbers."""
    lines = []
    key = lambda c: (c["method"], c["d"], c["num_facts"], c["width"])
    pairs = {}
    for c in cells:
        pairs.setdefault(key(c), {})[bool(c["whiten"])] = c
    for k, pair in sorted(pairs.items()):
        for whiten, c in sorted(pair.items()):
            name = f"{c['method']}{' (whitened)' if whiten else ''} d={c['d']} F={c['num_facts']} m={c['width']}"
            fmt = lambda v: "n/a" if v is None or v != v else f"{v:.4g}"
            lines.append(f"- {name}: standalone accuracy {fmt(c.get('mlp_accuracy'))}, γ_min "
                         f"{fmt(c.get('margin_min'))}, max ‖J‖·‖k‖/‖g‖ {fmt(c.get('jacobian_rel_max'))}, "
                         "recall "
                         f"(insert) {fmt(c.get('insert_recall'))}, (swap) {fmt(c.get('swap_recall'))}, "
                         f"attention error {fmt(c.get('insert_attn_error_mean'))}")
    return "\n".join(lines)


USABILITY = Experiment(
    name="transformer_usability",
    params=USABILITY_PARAMS,
    next_probes=usability_next,
    run_probes=usability_run,
    summarize=usability_summary,
    check=_check_whiten,
    summary_columns=("method", "whiten", "d", "num_facts", "width", "params", "mlp_accuracy", "margin_min",
                     "jacobian_rel_max", "recall_eps_0p1", "insert_recall", "swap_recall", "insert_attn_error_mean"),
    trajectory=("attn_steps_run", "recall"),
    figures=(
        FigureSpec("recall_vs_params", "params", "swap_recall", "method", "whiten", log_y=False,
                   title="recall after swap-in vs MLP parameters"),
        FigureSpec("recall_vs_lipschitz", "jacobian_rel_max", "recall_eps_0p1", "method", "whiten", log_y=False,
                   title="recall under query noise 0.1 vs relative Jacobian norm"),
    ),
    findings=usability_findings,
    labels=LABELS,
)


# --- transformer_capacity ---------------------------------------------------------------------------

SETTINGS = ("transformer", "standalone")

CAPACITY_PARAMS = {
    **COMMON,
    "schedule": Param(str, "pretrain_then_swap", choices=SCHEDULES, doc="the Transformer setting's schedule"),
    "threshold": Param(float, 0.99, low=0.0, high=1.0, low_open=True, doc="recall that counts as stored"),
    "standalone_threshold": Param(float, 0.99, low=0.0, high=1.0, low_open=True,
                                  doc="standalone accuracy that counts as stored (as threshold by default, so "
                                      "usable_fraction compares like with like; 1.0 is the standalone definition)"),
    "search_low": Param(int, 64, low=2, doc="smallest F searched"),
    "search_high": Param(int, 4096, low=2, high=1 << 22, doc="largest F searched"),
    "search_arity": Param(int, 1, low=1, high=64, doc="values of F probed per round and setting"),
    "facts_step": Param(int, 16, low=1, doc="F is searched on multiples of this step (within the range)"),
}


def _capacity_check(cell: dict) -> None:
    _check_whiten(cell)
    check_search_range(cell)


def _grid(cell: dict) -> tuple[int, int]:
    """The search runs over indices n with F = n·step (F ≥ 2); the index range inside [low, high]."""
    step = cell["facts_step"]
    lo = max(-(-cell["search_low"] // step), -(-2 // step))
    return lo, max(lo, cell["search_high"] // step)


def largest_facts(observations: dict[int, bool], cell: dict) -> tuple[list[int], int | None]:
    """(next F to probe, largest F stored so far) for one setting: a pure k-ary bisection for the
    largest F on the grid that succeeds, assuming success falls monotonically with F.

    The bracket is [largest success, smallest failure above it); while nothing succeeded the round
    probes the smallest F (if even that fails the answer is None) and ``arity − 1`` points above it.
    Observations off the grid or out of range are ignored, so a resumed cell continues exactly.
    """
    step, arity = cell["facts_step"], cell["search_arity"]
    lo, hi = _grid(cell)
    seen = {int(f) // step: bool(ok) for f, ok in observations.items() if int(f) % step == 0}
    seen = {n: ok for n, ok in seen.items() if lo <= n <= hi}
    successes = [n for n, ok in seen.items() if ok]
    best = max(successes) if successes else None
    if best is None and seen.get(lo) is False:
        return [], None
    bottom = lo - 1 if best is None else best
    failures = [n for n, ok in seen.items() if not ok and n > bottom]
    end = min(failures) - 1 if failures else hi  # largest index not known to fail
    if bottom >= end:
        return [], None if best is None else best * step
    span = end - bottom
    if best is None:
        picks = {lo} | {lo + (end - lo) * i // arity for i in range(1, arity)}
    else:
        picks = {bottom + -(-span * i // (arity + 1)) for i in range(1, arity + 1)}
    picks = sorted(n for n in picks if n not in seen and bottom < n <= end)
    return [n * step for n in picks], None if best is None else best * step


def _observations(results: list[dict], setting: str, threshold: float) -> dict[int, bool]:
    key = "recall" if setting == "transformer" else "mlp_accuracy"
    return {int(r["num_facts"]): r[key] >= threshold for r in results if r["setting"] == setting}


def _threshold(cell: dict, setting: str) -> float:
    return cell["threshold"] if setting == "transformer" else cell["standalone_threshold"]


def capacity_next(cell: dict, results: list[dict]) -> list[dict]:
    probes = []
    for setting in SETTINGS:
        nxt, _ = largest_facts(_observations(results, setting, _threshold(cell, setting)), cell)
        probes += [{"setting": setting, "num_facts": f} for f in nxt]
    return probes


def capacity_run(cell: dict, probes: list[dict]) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for p in probes:
        num_facts = int(p["num_facts"])
        if p["setting"] == "transformer":
            row = run_schedule(cell, cell["schedule"], num_facts, metrics=False)
            row["success"] = row["recall"] >= cell["threshold"]
        elif p["setting"] == "standalone":
            start = time.perf_counter()
            factset = _factset_of(cell, num_facts)
            mlp = build_mlp(cell, factset)
            scores = evaluate(mlp, factset)
            row = {"params": sum(q.numel() for q in mlp.parameters()), "mlp_accuracy": scores["accuracy"],
                   "margin_min": scores["margin_min"], "seconds": time.perf_counter() - start,
                   "success": scores["accuracy"] >= cell["standalone_threshold"]}
        else:
            raise ValueError(f"setting: got {p['setting']!r}; allowed: {', '.join(SETTINGS)}")
        rows.append(row)
    return rows


def capacity_summary(cell: dict, results: list[dict]) -> dict:
    out = {}
    for setting, name in (("transformer", "max_facts"), ("standalone", "max_facts_standalone")):
        _, best = largest_facts(_observations(results, setting, _threshold(cell, setting)), cell)
        out[name] = best
    # Constructions may build fewer units than the width allows (encoder_decoder): the parameters of
    # the MLP at the largest F stored in the Transformer, else at any probe.
    at_best = [r for r in results if r["setting"] == "transformer" and int(r["num_facts"]) == out["max_facts"]]
    params = [r["params"] for r in at_best + results if r.get("params") == r.get("params") and "params" in r]
    out["params"] = int(params[0]) if params else None
    out["usable_fraction"] = (out["max_facts"] / out["max_facts_standalone"]
                              if out["max_facts"] and out["max_facts_standalone"] else None)
    out["num_probes"] = len(results)
    return out


CAPACITY = Experiment(
    name="transformer_capacity",
    params=CAPACITY_PARAMS,
    next_probes=capacity_next,
    run_probes=capacity_run,
    summarize=capacity_summary,
    check=_capacity_check,
    summary_columns=("method", "whiten", "d", "width", "schedule", "params", "max_facts_standalone", "max_facts",
                     "usable_fraction"),
    trajectory=("num_facts", "success"),
    figures=(
        FigureSpec("facts_in_transformer_vs_params", "params", "max_facts", "method", "whiten",
                   title="facts recalled inside the Transformer vs MLP parameters"),
        FigureSpec("facts_standalone_vs_params", "params", "max_facts_standalone", "method", "whiten",
                   title="facts stored standalone vs MLP parameters"),
    ),
    labels=LABELS,
)
