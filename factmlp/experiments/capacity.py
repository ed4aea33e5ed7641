"""Capacity: the minimum hidden width (and so parameter count) at which a method stores F facts
(docs/science.md#the-capacity-protocol).

A cell is (method, geometry, d, F, seed, the geometry's options, the method's own options); a probe
is one hidden width. GD probes of one cell train together as one batched model; construction
probes are built one by one.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time

from factmlp import ceiling, geometries, methods
from factmlp.decodability import coherence, decodability
from factmlp.evaluate import evaluate
from factmlp.experiments import captions
from factmlp.experiments.capacity_findings import capacity_findings
from factmlp.experiments.capacity_prediction import predict
from factmlp.experiments.sweep_params import GEOMETRY_PARAMS, Param, geometry_options, method_options, method_params
from factmlp.factsets import FactSet
from factmlp.scaling import POWER, RHO, SIZE
from orchestrator.experiment import EARLY_STOP, Experiment, FigureSpec, FitSpec, ParamError, Reporting, is_set
from orchestrator.search import SmallestSuccess

# The minimum width that stores: a probe row's own verdict (accuracy ≥ the cell's threshold), its
# accuracy the score of the plateau rule (a model-class ceiling stops the search).
SEARCH = SmallestSuccess(
    "width",
    low=Param(int, 1, low=1, doc="smallest width searched"),
    high=Param(int, 65536, low=1, doc="largest width searched"),
    arity=Param(int, 1, low=1, high=64, doc="widths probed per search round"),
    verify=Param(bool, True, doc="after the minimum width m is found, probe m+1, m+2, ⌈1.05m⌉, ⌈1.1m⌉ "
                 "(and above any of them that fails) for the width from which every probe stores"),
    score=lambda cell, row: row["accuracy"],
)

PARAMS = {
    "method": Param(str, choices=tuple(methods.METHODS), doc="gd or a construction"),
    "geometry": Param(str, "spherical", choices=tuple(geometries.GEOMETRIES)),
    "d": Param(int, low=1, high=1 << 16, doc="embedding dimension"),
    "num_facts": Param(int, low=2, high=1 << 24, doc="F"),
    "seed": Param(int, 0, low=0, doc="fact-set seed: every method sees the same embeddings"),
    **GEOMETRY_PARAMS,
    "threshold": Param(float, 1.0, low=0.0, high=1.0, low_open=True, doc="accuracy that counts as stored"),
    **SEARCH.params,
    **method_params(methods.METHODS),
}


def check(cell: dict) -> None:
    """What can be known before anything runs: the search range, the fact set (an llm_* cell's model,
    layer, rows and d, without loading a model) and the method's options together."""
    geometries.check(cell["geometry"], cell["d"], cell["num_facts"], **geometry_options(cell))
    method = cell["method"]
    try:
        methods.options_of(method, method_options(cell, method))
    except ParamError as err:
        raise ParamError(f"{method}_{err.key}", err.message) from None


def _factset_key(cell: dict) -> tuple:
    return (cell["geometry"], cell["d"], cell["num_facts"], cell["seed"],
            tuple(sorted(geometry_options(cell).items())))


def make(cell: dict) -> FactSet:
    return _factset(*_factset_key(cell))


@functools.lru_cache(maxsize=8)
def _factset(geometry: str, d: int, num_facts: int, seed: int, options: tuple) -> FactSet:
    """Cached per worker process: the probes of one cell arrive in several tasks."""
    return geometries.make_factset(geometry, d, num_facts, seed, **dict(options))


@functools.lru_cache(maxsize=8)
def _value_geometry(*key) -> dict:
    """ρ and coherence μ of the value table, the geometry the paper says sets the cost."""
    values = _factset(*key).values
    return {"rho": decodability(values).rho, "coherence": coherence(values)}


# One panel per value of the first of these that a sweep varies (a figure mixing them would draw two
# series of one method in the same colour and marker).
PANELS = ("spike_on", "spike_axis", "whiten", "geometry", "tied", "mapping")


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    """Evaluate each probed width; pure: the same cell and probes give the same results.

    GD trains the widths together as one batched model and, unless the driver hands the cell
    ``early_stop: false`` (``search.early_stop``), stops each width once it is decided whether it
    reaches the cell's threshold (factmlp/early_stop.py; rows say ``epochs_run`` and ``stop_reason``).
    device 'auto': GD and the encoder–decoder's O(F³) global solve run on a GPU when the worker has one.
    """
    factset = make(cell)
    widths = [int(p["width"]) for p in probes]
    method = cell["method"]
    options = methods.options_of(method, method_options(cell, method))
    if cell.get(EARLY_STOP, True) and "stop_at_accuracy" in {f.name for f in dataclasses.fields(options)}:
        options = dataclasses.replace(options, stop_at_accuracy=cell["threshold"])
    start = time.perf_counter()
    built = methods.build_fact_mlps(method, factset, widths, seed=cell["seed"], options=options, device="auto")
    seconds = (time.perf_counter() - start) / len(widths)
    geometry = _value_geometry(*_factset_key(cell))
    rows = []
    for width, (model, extra) in zip(widths, built):
        scores = evaluate(model, factset)
        rows.append({"width": width, "params": model.param_count(), "params_distinct": model.distinct_param_count(),
                     **scores,
                     "success": scores["accuracy"] >= cell["threshold"], "seconds": seconds, **geometry, **extra})
    return rows


def bits_per_param(num_facts: int, params: float) -> float:
    """An arbitrary permutation of F items carries log2(F!) bits."""
    return math.lgamma(num_facts + 1) / math.log(2) / params


def summarize(cell: dict, results: list[dict]) -> dict:
    step = SEARCH.observe(cell, results)
    at = {int(r["width"]): r for r in results}
    best, stable = at.get(step.answer), at.get(step.stable)
    facts = cell["num_facts"]
    predicted = next((r["predicted_width"] for r in results if is_set(r.get("predicted_width"))), None)
    return {
        "min_width": step.answer,
        "params": None if best is None else int(best["params"]),
        "params_distinct": None if best is None or not is_set(best.get("params_distinct")) else int(
            best["params_distinct"]),  # the second counting convention (factmlp/mlp.py)
        "params_per_fact": None if best is None else best["params"] / facts,
        "bits_per_param": None if best is None else bits_per_param(facts, best["params"]),
        "accuracy": None if best is None else float(best["accuracy"]),
        "margin_min": None if best is None else float(best["margin_min"]),
        "stable_width": step.stable,
        "stable_params": None if stable is None else int(stable["params"]),
        "rho": results[0]["rho"] if results else None,
        "coherence": results[0]["coherence"] if results else None,
        "best_accuracy": max((float(r["accuracy"]) for r in results), default=None),  # the ceiling when nothing stores
        "max_width_tried": max(at, default=None),
        "max_params_tried": int(at[max(at)]["params"]) if at else None,
        "stored": best is not None,
        "monotone": step.monotone,
        "accuracy_plateau": step.plateau,  # stopped below search_high: best accuracy flat as width grew
        "num_probes": len(results),
        "predicted_width": predicted,  # where the search opened its first bracket (None: plain search)
    }


def cell_note(cell: dict) -> str:
    """Non-monotone success: the search's answer stores but a wider probed width fails; a plateau:
    nothing stores and accuracy stopped growing with width (a model-class ceiling)."""
    if cell.get("accuracy_plateau") is True:
        return (f"‡ model-class ceiling: accuracy flat at {cell['best_accuracy']:.3f} up to width "
                f"{cell['max_width_tried']:.0f}; the search stopped")
    if cell.get("monotone", True) is not False:
        return ""
    stable = cell.get("stable_width")
    stable = None if stable is None or stable != stable else int(stable)
    return (f"† non-monotone: stores at {cell['min_width']:.0f}, fails above; every probed width from {stable} stores"
            if stable is not None else f"† non-monotone: stores at {cell['min_width']:.0f}, fails above; no stable "
                                       "width within 2× of it")


def plan_warning(cell: dict) -> str:
    """A GD cell whose F the bilinear class cannot store at any width (docs/science.md#model-class-ceiling)."""
    if cell["method"] != "gd" or cell["gd_activation"] != "bilinear":
        return ""
    d, facts, bias = cell["d"], cell["num_facts"], cell["gd_bias"]
    p = ceiling.feature_count(d, bias)
    if facts > ceiling.counting_limit(d, bias):
        return (f"gd bilinear, d = {d}: F = {facts} exceeds the counting limit {ceiling.counting_limit(d, bias)} "
                "of the model class: no width stores it")
    if facts > ceiling.estimated_capacity(d, bias):
        return (f"gd bilinear, d = {d}: F = {facts} > {ceiling.estimated_capacity(d, bias)} = 2p, the estimated "
                f"capacity of the model class at any width (widths past p = {p} add nothing); expect a "
                "model-class ceiling (gd_activation=silu or relu has none)")
    return ""


EXPERIMENT = Experiment(
    name="capacity",
    params=PARAMS,
    run_probes=run_probes,
    summarize=summarize,
    check=check,
    search=SEARCH,
    predict=predict,
    input_files=("table_path",),  # llm_* geometries read their embeddings from this file
    order=lambda cell: (cell["num_facts"] / cell["d"], cell["num_facts"]),  # small F/d first: predictions early
    plan_warning=plan_warning,
    method_of=lambda cell: cell["method"],
    reporting=Reporting(
        summary_columns=("method", "geometry", "d", "num_facts", "min_width", "params", "params_per_fact", "rho",
                         "coherence"),  # ρ and μ of the values beside the cost (real vs spherical embeddings)
        aggregates=("params", "params_per_fact"),
        view_metrics=("bits_per_param", "stored", "monotone", "accuracy_plateau"),
        trajectory=("width", "accuracy"),
        fits=(
            FitSpec(SIZE, "num_facts", "params", over=("num_facts",)),
            FitSpec(POWER, "num_facts", "params", over=("num_facts",)),
            FitSpec(RHO, "rho", "params", over=("beta", "kappa")),
        ),
        figures=(
            FigureSpec("facts_vs_params", "params", "num_facts", "method", "d", law="power", missing_x="max_params_tried",
                       facet=PANELS, needs=("num_facts",), title="Facts stored against parameters"),
            FigureSpec("params_vs_inverse_rho", "rho", "params", "method", "num_facts", law="rho", invert_x=True,
                       facet=("spike_on", "geometry"), group=("beta", "kappa"), needs=("beta", "kappa"),
                       title="Parameters against inverse decodability of the values"),
            FigureSpec("accuracy_vs_width", "width", "accuracy", "method", "d", table="probes", log_y=False,
                       kind="curves", group=("num_facts",), facet=PANELS, top=1.0,
                       title="Accuracy against hidden width"),
        ),
        findings=functools.partial(capacity_findings, params=tuple(PARAMS)),
        caption=captions.capacity,
        cell_note=cell_note,
        labels={"num_facts": "facts stored, F", "params": "parameters, W", "rho": "decodability ρ of the values",
                "width": "hidden width, m", "accuracy": "accuracy (fraction of facts decoded)", "d": "d",
                "method": "method", "spike_on": "spike on", "beta": "spike strength, β", "kappa": "condition number, κ",
                "geometry": "geometry", "whiten": "whitened"},
    ),
)
