"""Capacity: the minimum hidden width (and so parameter count) at which a method stores F facts.

A cell is (method, geometry, d, F, seed, options); a probe is one hidden width. GD probes of one
cell train together as one batched model; construction probes are built one by one.
"""
from __future__ import annotations

import functools
import math
import time

from factmlp import constructions, factsets
from factmlp.capacity import check_search_range, next_widths
from factmlp.decodability import coherence, decodability
from factmlp.evaluate import evaluate
from factmlp.experiments.base import Experiment, FigureSpec, FitSpec, Param
from factmlp.experiments.capacity_findings import capacity_findings
from factmlp.mlp import ACTIVATIONS
from factmlp.train import TrainConfig, train_batched

METHODS = ("gd",) + tuple(sorted(constructions.CONSTRUCTIONS))

PARAMS = {
    "method": Param(str, choices=METHODS, doc="gd or a construction"),
    "geometry": Param(str, "spherical", choices=factsets.ALL_GEOMETRIES),
    "d": Param(int, low=1, high=1 << 16, doc="embedding dimension"),
    "num_facts": Param(int, low=2, high=1 << 24, doc="F"),
    "seed": Param(int, 0, low=0, doc="fact-set seed: every method sees the same embeddings"),
    "tied": Param(bool, True, doc="keys and values are the same table"),
    "mapping": Param(str, "permutation", choices=factsets.MAPPINGS),
    "beta": Param(float, 0.0, low=0.0, high=1e3, doc="spike strength (geometry spike)"),
    "spike_on": Param(str, "both", choices=factsets.SPIKE_TARGETS),
    "kappa": Param(float, 10.0, low=1.0, high=1e12, doc="condition number (geometry condition)"),
    "whiten": Param(bool, False, doc="whiten the values"),
    "llm_model": Param(str, "all-MiniLM-L6-v2", doc="llm_* geometries: all-MiniLM-L6-v2 (packaged, offline) "
                       "or a Hugging Face causal-LM id 'org/name' (needs the hf extra and the hub)"),
    "llm_layer": Param(int, -1, low=-1, doc="llm_mlp_io: the layer whose MLP input/output is captured; -1 = middle"),
    "llm_rows": Param(int, 0, low=0, doc="llm_* geometries: rows captured, the pool the F facts are sampled from; "
                      "0 = as many as needed"),
    "llm_normalize": Param(bool, True, doc="llm_* geometries: scale rows to unit norm"),
    "table_path": Param(str, "", doc="llm_* geometries: a captured table (.safetensors of `factsweep embeddings "
                        "capture`, or .npy token embeddings) instead of llm_model"),
    "threshold": Param(float, 1.0, low=0.0, high=1.0, low_open=True, doc="accuracy that counts as stored"),
    "search_low": Param(int, 1, low=1, doc="smallest width searched"),
    "search_high": Param(int, 65536, low=1, doc="largest width searched"),
    "search_arity": Param(int, 1, low=1, high=64, doc="widths probed per search round"),
    "search_verify": Param(bool, True, doc="after the minimum width m is found, probe m+1, m+2, ⌈1.05m⌉, ⌈1.1m⌉ "
                           "(and above any of them that fails) for the width from which every probe stores"),
    "epochs": Param(int, 10_000, low=1),
    "lr": Param(float, 1e-3, low=0.0, low_open=True),
    "lr_min": Param(float, 1e-6, low=0.0),
    "loss_stop": Param(float, 1e-7, low=0.0),
    "activation": Param(str, "bilinear", choices=tuple(ACTIVATIONS)),
    "bias": Param(bool, False),
    "ridge": Param(float, 1e-6, low=0.0, doc="ridge λ of hebbian_whitened and data_dependent"),
    "hermite_degree": Param(int, 1, low=0, high=64, doc="ntk: Hermite degree of the features (0, 1, 2, 6, 10, ...)"),
    "cg_iters": Param(int, 25, low=0, doc="data_dependent: conjugate-gradient steps per factor fit"),
    "ed_variant": Param(str, "closed", choices=constructions.ENCODER_DECODER_CHOICES["variant"],
                        doc="encoder_decoder: closed form or gradient fit of the encoder"),
    "ed_solve": Param(str, "global", choices=constructions.ENCODER_DECODER_CHOICES["solve"],
                      doc="encoder_decoder closed form: one global solve (fewest params) or isolated gadgets (fast)"),
    "code_dim": Param(int, 0, low=0, doc="encoder_decoder: code dimension c; 0 = smallest adequate c <= d"),
    "codes": Param(str, "auto", choices=constructions.ENCODER_DECODER_CHOICES["codes"],
                   doc="encoder_decoder: code directions v, the rho-optimal u*, or auto"),
    "code_margin": Param(float, 0.01, low=0.0, high=1.0, doc="encoder_decoder: margin the code table must decode with"),
    "code_whiten": Param(bool, False, doc="encoder_decoder: codes and decoder in the whitened value geometry"),
    "gate": Param(str, "bucket", choices=constructions.ENCODER_DECODER_CHOICES["gate"], doc="encoder_decoder: gate form"),
    "gate_threshold": Param(float, -1.0, doc="encoder_decoder: gate threshold θ; negative = the design's default"),
    "bucket_size": Param(int, 0, low=0, doc="encoder_decoder: keys per bucket; 0 = as the width allows"),
    "units_per_bucket": Param(int, 0, low=0, doc="encoder_decoder local: units per gadget; 0 = 1"),
    "fit_loss": Param(str, "ce", choices=constructions.ENCODER_DECODER_CHOICES["fit_loss"],
                      doc="encoder_decoder fit: cross-entropy through the decoder or squared error onto codes"),
    "fit_epochs": Param(int, 2000, low=1, doc="encoder_decoder fit: Adam epochs"),
    "fit_lr": Param(float, 1e-2, low=0.0, low_open=True, doc="encoder_decoder fit: Adam learning rate"),
}


def check(cell: dict) -> None:
    check_search_range(cell)
    if cell["geometry"] in factsets.LLM_GEOMETRIES:
        from factmlp.llm import check_cell  # model name, layer range, rows and d, without loading a model

        check_cell(cell["geometry"], cell["llm_model"], cell["llm_layer"], cell["llm_rows"], cell["table_path"],
                   cell["d"], cell["num_facts"], cell["tied"])


FACTSET_KEYS = ("geometry", "d", "num_facts", "seed", "tied", "mapping", "beta", "spike_on", "kappa", "whiten",
                "llm_model", "llm_layer", "llm_rows", "llm_normalize", "table_path")


def make(cell: dict) -> factsets.FactSet:
    return _factset(*(cell[k] for k in FACTSET_KEYS))


@functools.lru_cache(maxsize=8)
def _factset(geometry, d, num_facts, seed, tied, mapping, beta, spike_on, kappa, whiten,
             llm_model, llm_layer, llm_rows, llm_normalize, table_path) -> factsets.FactSet:
    """Cached per worker process: the probes of one cell arrive in several tasks."""
    return factsets.make_factset(geometry, d, num_facts, seed, tied=tied, mapping=mapping, beta=beta,
                                 spike_on=spike_on, kappa=kappa, whiten_values=whiten, llm_model=llm_model,
                                 llm_layer=llm_layer, llm_rows=llm_rows, llm_normalize=llm_normalize,
                                 table_path=table_path)


@functools.lru_cache(maxsize=8)
def _value_geometry(*key) -> dict:
    """ρ and coherence μ of the value table, the geometry the paper says sets the cost."""
    values = _factset(*key).values
    return {"rho": decodability(values).rho, "coherence": coherence(values)}


def _observations(results: list[dict]) -> dict[int, bool]:
    return {int(r["width"]): bool(r["success"]) for r in results}


def _search(cell: dict, results: list[dict]):
    return next_widths(_observations(results), cell["search_low"], cell["search_high"], cell["search_arity"],
                       verify=cell["search_verify"])


def next_probes(cell: dict, results: list[dict]) -> list[dict]:
    return [{"width": w} for w in _search(cell, results).next_widths]


def _construction_options(cell: dict) -> dict:
    """Each construction's keyword options from the cell (0 / negative mean 'the design's default')."""
    method = cell["method"]
    if method == "hebbian_whitened":
        return {"ridge": cell["ridge"]}
    if method == "data_dependent":
        return {"ridge": cell["ridge"], "cg_iters": cell["cg_iters"]}
    if method == "ntk":
        return {"degree": cell["hermite_degree"]}
    if method == "encoder_decoder":
        return {
            "variant": cell["ed_variant"], "solve": cell["ed_solve"], "code_dim": cell["code_dim"] or None,
            "codes": cell["codes"], "code_margin": cell["code_margin"], "whiten": cell["code_whiten"],
            "gate": cell["gate"], "threshold": None if cell["gate_threshold"] < 0 else cell["gate_threshold"],
            "bucket_size": cell["bucket_size"] or None, "units_per_bucket": cell["units_per_bucket"] or None,
            "fit_loss": cell["fit_loss"], "fit_epochs": cell["fit_epochs"], "fit_lr": cell["fit_lr"],
            "device": "auto",  # the O(F³) global solve runs on a GPU when the worker has one
        }
    return {}


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    """Evaluate each probed width; pure: the same cell and probes give the same results."""
    factset = make(cell)
    widths = [int(p["width"]) for p in probes]
    start = time.perf_counter()
    if cell["method"] == "gd":
        config = TrainConfig(epochs=cell["epochs"], lr=cell["lr"], lr_min=cell["lr_min"], loss_stop=cell["loss_stop"],
                             activation=cell["activation"], bias=cell["bias"], seed=cell["seed"])
        trained = train_batched(factset, widths, config)
        for width, t in zip(widths, trained):
            if not math.isfinite(t["loss"]):
                raise FloatingPointError(f"GD loss is {t['loss']} at width {width}; lower lr (now {cell['lr']})")
        models = [t["model"] for t in trained]
        extras = [{"loss": t["loss"], "epochs_run": t["epochs"]} for t in trained]
    else:
        models = [constructions.build(cell["method"], factset, w, seed=cell["seed"], **_construction_options(cell))
                  for w in widths]
        extras = [{} for _ in widths]
    seconds = (time.perf_counter() - start) / len(widths)
    geometry = _value_geometry(*(cell[k] for k in FACTSET_KEYS))
    rows = []
    for width, model, extra in zip(widths, models, extras):
        scores = evaluate(model, factset)
        rows.append({"width": width, "params": model.param_count(), **scores,
                     "success": scores["accuracy"] >= cell["threshold"], "seconds": seconds, **geometry, **extra})
    return rows


def bits_per_param(num_facts: int, params: float) -> float:
    """An arbitrary permutation of F items carries log2(F!) bits."""
    return math.lgamma(num_facts + 1) / math.log(2) / params


def summarize(cell: dict, results: list[dict]) -> dict:
    step = _search(cell, results)
    at = {int(r["width"]): r for r in results}
    best, stable = at.get(step.min_width), at.get(step.stable_width)
    facts = cell["num_facts"]
    return {
        "min_width": step.min_width,
        "params": None if best is None else int(best["params"]),
        "params_per_fact": None if best is None else best["params"] / facts,
        "bits_per_param": None if best is None else bits_per_param(facts, best["params"]),
        "accuracy": None if best is None else float(best["accuracy"]),
        "margin_min": None if best is None else float(best["margin_min"]),
        "stable_width": step.stable_width,
        "stable_params": None if stable is None else int(stable["params"]),
        "rho": results[0]["rho"] if results else None,
        "coherence": results[0]["coherence"] if results else None,
        "best_accuracy": max((float(r["accuracy"]) for r in results), default=None),  # the ceiling when nothing stores
        "max_width_tried": max(at, default=None),
        "max_params_tried": int(at[max(at)]["params"]) if at else None,
        "stored": best is not None,
        "monotone": step.monotone,
        "num_probes": len(results),
    }


def cell_note(cell: dict) -> str:
    """Non-monotone success: the search's answer stores but a wider probed width fails."""
    if cell.get("monotone", True) is not False:
        return ""
    stable = cell.get("stable_width")
    stable = None if stable is None or stable != stable else int(stable)
    return (f"† non-monotone: stores at {cell['min_width']:.0f}, fails above; every probed width from {stable} stores"
            if stable is not None else f"† non-monotone: stores at {cell['min_width']:.0f}, fails above; no stable "
                                       "width within 2× of it")


EXPERIMENT = Experiment(
    name="capacity",
    params=PARAMS,
    next_probes=next_probes,
    run_probes=run_probes,
    summarize=summarize,
    check=check,
    summary_columns=("method", "geometry", "d", "num_facts", "min_width", "params", "params_per_fact", "rho",
                     "coherence"),  # ρ and μ of the values beside the cost (real vs spherical embeddings)
    aggregates=("params", "params_per_fact"),
    view_metrics=("bits_per_param", "stored", "monotone"),
    trajectory=("width", "accuracy"),
    fits=(
        FitSpec("size", "num_facts", "params", over=("num_facts",)),
        FitSpec("power", "num_facts", "params", over=("num_facts",)),
        FitSpec("rho", "rho", "params", over=("beta", "kappa")),
    ),
    figures=(
        FigureSpec("facts_vs_params", "params", "num_facts", "method", "d", law="power", missing_x="max_params_tried",
                   title="facts stored vs parameters"),
        FigureSpec("params_vs_inverse_rho", "rho", "params", "method", "num_facts", law="rho", invert_x=True,
                   facet="spike_on", needs=("beta", "kappa", "spike_on"), title="parameters vs inverse decodability"),
        FigureSpec("accuracy_vs_width", "width", "accuracy", "method", "d", table="probes", log_y=False,
                   title="accuracy vs hidden width (one line per cell)"),
    ),
    findings=functools.partial(capacity_findings, params=tuple(PARAMS)),
    cell_note=cell_note,
    labels={"num_facts": "facts stored, F", "params": "parameters, W", "rho": "decodability ρ of the values",
            "width": "hidden width, m", "accuracy": "accuracy (fraction of facts decoded)", "d": "d",
            "method": "method", "spike_on": "spike on"},
)
