"""Capacity: the minimum hidden width (and so parameter count) at which a method stores F facts.

A cell is (method, geometry, d, F, seed, options); a probe is one hidden width. GD probes of one
cell train together as one batched model; construction probes are built one by one.
"""
from __future__ import annotations

import math
import time

from factmlp import constructions, factsets
from factmlp.capacity import next_widths
from factmlp.evaluate import evaluate
from factmlp.experiments.base import Experiment, Param
from factmlp.mlp import ACTIVATIONS
from factmlp.train import TrainConfig, train_batched

METHODS = ("gd",) + tuple(sorted(constructions.CONSTRUCTIONS))

PARAMS = {
    "method": Param(str, choices=METHODS, doc="gd or a construction"),
    "geometry": Param(str, "spherical", choices=factsets.GEOMETRIES),
    "d": Param(int, low=1, high=1 << 16, doc="embedding dimension"),
    "num_facts": Param(int, low=2, high=1 << 24, doc="F"),
    "seed": Param(int, 0, low=0, doc="fact-set seed: every method sees the same embeddings"),
    "tied": Param(bool, True, doc="keys and values are the same table"),
    "mapping": Param(str, "permutation", choices=factsets.MAPPINGS),
    "beta": Param(float, 0.0, low=0.0, high=1e3, doc="spike strength (geometry spike)"),
    "spike_on": Param(str, "both", choices=factsets.SPIKE_TARGETS),
    "kappa": Param(float, 10.0, low=1.0, high=1e12, doc="condition number (geometry condition)"),
    "whiten": Param(bool, False, doc="whiten the values"),
    "threshold": Param(float, 1.0, low=0.0, high=1.0, low_open=True, doc="accuracy that counts as stored"),
    "search_low": Param(int, 1, low=1, doc="smallest width searched"),
    "search_high": Param(int, 65536, low=1, doc="largest width searched"),
    "search_arity": Param(int, 1, low=1, high=64, doc="widths probed per search round"),
    "epochs": Param(int, 10_000, low=1),
    "lr": Param(float, 1e-3, low=0.0, low_open=True),
    "lr_min": Param(float, 1e-6, low=0.0),
    "loss_stop": Param(float, 1e-7, low=0.0),
    "activation": Param(str, "bilinear", choices=tuple(ACTIVATIONS)),
    "bias": Param(bool, False),
    "ridge": Param(float, 1e-6, low=0.0, doc="ridge λ of hebbian_whitened"),
}


def check(cell: dict) -> None:
    if cell["search_low"] > cell["search_high"]:
        raise ValueError(f"search_high: got {cell['search_high']} below search_low {cell['search_low']}; "
                         "allowed: search_low <= search_high")


def make(cell: dict) -> factsets.FactSet:
    return factsets.make_factset(
        cell["geometry"], cell["d"], cell["num_facts"], cell["seed"], tied=cell["tied"],
        mapping=cell["mapping"], beta=cell["beta"], spike_on=cell["spike_on"], kappa=cell["kappa"],
        whiten_values=cell["whiten"],
    )


def _observations(results: list[dict]) -> dict[int, bool]:
    return {int(r["width"]): bool(r["success"]) for r in results}


def next_probes(cell: dict, results: list[dict]) -> list[dict]:
    step = next_widths(_observations(results), cell["search_low"], cell["search_high"], cell["search_arity"])
    return [{"width": w} for w in step.next_widths]


def _construction_options(cell: dict) -> dict:
    return {"ridge": cell["ridge"]} if cell["method"] == "hebbian_whitened" else {}


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
    rows = []
    for width, model, extra in zip(widths, models, extras):
        scores = evaluate(model, factset)
        rows.append({"width": width, "params": model.param_count(), **scores,
                     "success": scores["accuracy"] >= cell["threshold"], "seconds": seconds, **extra})
    return rows


def summarize(cell: dict, results: list[dict]) -> dict:
    step = next_widths(_observations(results), cell["search_low"], cell["search_high"], cell["search_arity"])
    best = next((r for r in results if int(r["width"]) == step.min_width), None)
    return {
        "min_width": step.min_width,
        "params": None if best is None else int(best["params"]),
        "params_per_fact": None if best is None else best["params"] / cell["num_facts"],
        "accuracy": None if best is None else float(best["accuracy"]),
        "margin_min": None if best is None else float(best["margin_min"]),
        "found": best is not None,
        "monotone": step.monotone,
        "num_probes": len(results),
    }


EXPERIMENT = Experiment(
    name="capacity",
    params=PARAMS,
    next_probes=next_probes,
    run_probes=run_probes,
    summarize=summarize,
    check=check,
    summary_columns=("method", "geometry", "d", "num_facts", "min_width", "params", "params_per_fact"),
    figure={"x": "params", "y": "num_facts", "series": "method", "marker": "d"},
)
