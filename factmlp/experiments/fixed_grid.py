"""fixed_grid: every point of a grid evaluated once, no search (docs/science.md#fixed-grid-studies).

The paper's analysis figures (margin against width, F or β; recall as query noise grows; the
Transformer's recall against the fact MLP's width or F) need a metric at each grid point, not a
threshold crossing. A cell is one point (method, whiten, geometry, β, d, F, width, seed, ...) and runs
one probe: ``probe: mlp`` builds the fact MLP and measures it alone (γ, accuracy, ρ of the values,
Lipschitz bound and Jacobian norms, recall under query noise ``query_eps``); ``probe: transformer``
runs one Transformer schedule end to end (``transformer_schedules.run_schedule``) and records its
recall and usability metrics. The cell parameters are the Transformer studies' own (``COMMON``).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from factmlp.decodability import decodability
from factmlp.experiments import captions
from factmlp.evaluate import jacobian_norms, lipschitz_bound, margins, noise_directions
from factmlp.experiments.fixed_grid_findings import fixed_grid_findings
from factmlp.experiments.sweep_params import Param
from factmlp.experiments.transformer_schedules import (COMMON, LABELS, SCHEDULES, build_mlp, check as check_common,
                                                       factset_of, method_of, run_schedule)
from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP
from orchestrator.experiment import Experiment, FigureSpec, ParamError, Reporting

PROBES = ("mlp", "transformer")
JACOBIAN_KEYS = 128  # keys whose exact Jacobian norm is taken (as in the Transformer studies)

PARAMS = {
    **COMMON,
    "num_facts": Param(int, low=2, high=1 << 22, doc="F"),
    "probe": Param(str, "mlp", choices=PROBES, doc="what a grid point measures: the fact MLP alone, or the MLP "
                   "inside the Transformer after `schedule`"),
    "schedule": Param(str, "pretrain_then_swap", choices=SCHEDULES, doc="the Transformer schedule (probe transformer)"),
    "query_eps": Param(float, 0.0, low=0.0, high=10.0, doc="query noise ε of the MLP's recall_noisy (probe mlp): "
                       "query k + ε‖k‖u, u a random unit vector, rescaled to ‖k‖ as the frozen pre-MLP norm does"),
}


def check(cell: dict) -> None:
    check_common(cell)
    if cell["probe"] == "transformer" and cell["query_eps"]:
        raise ParamError("query_eps", f"got {cell['query_eps']} with probe transformer; allowed: 0 (the Transformer "
                          "probe measures query noise in its recall_eps_* columns)")


def next_probes(cell: dict, results: list[dict]) -> list[dict]:
    """One probe per grid point: none once it has a result."""
    return [] if results else [{"probe": cell["probe"]}]


@functools.lru_cache(maxsize=8)
def _rho(geometry: str, beta: float, d: int, num_facts: int, seed: int) -> float:
    cell = {"geometry": geometry, "beta": beta, "d": d, "seed": seed}
    return decodability(factset_of(cell, num_facts).values).rho


def noisy_queries(keys: np.ndarray, eps: float, seed: int) -> np.ndarray:
    """k + ε‖k‖u rescaled to ‖k‖: the query the MLP sees behind a fixed-scale norm when attention's
    output is off by a relative error ε in a random direction u."""
    norms = np.linalg.norm(keys, axis=1, keepdims=True)
    noisy = keys + eps * norms * noise_directions(len(keys), keys.shape[1], seed)
    return noisy / np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True), 1e-300) * norms


def measure_mlp(mlp: torch.nn.Module, factset: FactSet, eps: float, seed: int) -> dict:
    """γ and accuracy on the keys, recall (and γ) on noisy queries, and the MLP's stretch."""
    gamma = margins(mlp, factset)
    noisy = margins(mlp, factset, queries=noisy_queries(factset.keys, eps, seed))
    d, facts = factset.d, factset.num_facts
    row = {"accuracy": float(np.mean(gamma > 0)), "margin_min": float(gamma.min()),
           "margin_mean": float(gamma.mean()), "recall_noisy": float(np.mean(noisy > 0)),
           "margin_noisy_min": float(noisy.min()), "noise_scale": math.sqrt(d / (facts * math.log(facts)))}
    if isinstance(mlp, GatedMLP):
        radius = float(np.linalg.norm(factset.keys, axis=1).max())
        sample = factset.keys[:JACOBIAN_KEYS]
        norms = jacobian_norms(mlp, sample)
        p = next(mlp.parameters())
        with torch.no_grad():
            out = mlp(torch.as_tensor(sample, dtype=p.dtype)).norm(dim=1).double().numpy()
        rel = float(np.max(norms * np.linalg.norm(sample, axis=1) / np.maximum(out, 1e-300)))
        row.update(lipschitz_bound=lipschitz_bound(mlp, radius), jacobian_norm_max=float(norms.max()),
                   jacobian_rel_max=rel, noise_radius=row["margin_min"] / rel)
    return row


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    return [_run(cell) for _ in probes]


def _run(cell: dict) -> dict:
    facts = cell["num_facts"]
    rho = _rho(cell["geometry"], cell["beta"], cell["d"], facts, cell["seed"])
    if cell["probe"] == "transformer":
        row = run_schedule(cell, cell["schedule"], facts)
        return {**row, "accuracy": row.get("mlp_accuracy"), "rho": rho}
    factset = factset_of(cell, facts)
    mlp = build_mlp(cell, factset)
    return {"params": sum(p.numel() for p in mlp.parameters()), "rho": rho,
            **measure_mlp(mlp, factset, cell["query_eps"], cell["seed"])}


METRICS = ("params", "rho", "accuracy", "margin_min", "margin_mean", "recall_noisy", "margin_noisy_min", "noise_scale",
           "lipschitz_bound", "jacobian_norm_max", "jacobian_rel_max", "noise_radius", "recall", "recall_exact_key",
           "recall_eps_0p05", "recall_eps_0p1", "recall_eps_0p2", "attn_error_mean", "attn_steps_run")


def summarize(cell: dict, results: list[dict]) -> dict:
    """The grid point's metrics (its one probe's); columns a probe does not measure stay empty."""
    row = results[0] if results else {}
    return {key: row.get(key) for key in METRICS}


FIGURES = (
    FigureSpec("margin_vs_width", "width", "margin_min", "method", "whiten", log_y=False, needs=("width",),
               facet="num_facts", title="minimum margin γ vs hidden width"),
    FigureSpec("margin_vs_facts", "num_facts", "margin_min", "method", "whiten", log_y=False, needs=("num_facts",),
               facet="width", title="minimum margin γ vs facts stored"),
    FigureSpec("margin_vs_beta", "beta", "margin_min", "method", "whiten", log_x=False, log_y=False, needs=("beta",),
               title="minimum margin γ vs spike strength β"),
    FigureSpec("margin_vs_rho", "rho", "margin_min", "method", "whiten", log_y=False, needs=("beta",),
               title="minimum margin γ vs decodability ρ of the values"),
    FigureSpec("recall_vs_query_noise", "query_eps", "recall_noisy", "method", "whiten", log_x=False, log_y=False,
               needs=("query_eps",), facet="num_facts", reference=0.99, top=1.0,
               title="recall of the MLP under query noise ε"),
    FigureSpec("transformer_recall_vs_width", "width", "recall", "method", "whiten", log_y=False, needs=("width",),
               facet="num_facts", reference=0.99, top=1.0, ceiling=True,
               title="recall inside the Transformer vs hidden width"),
    FigureSpec("transformer_recall_vs_facts", "num_facts", "recall", "method", "whiten", log_y=False,
               needs=("num_facts",), facet="width", reference=0.99, top=1.0, ceiling=True,
               title="recall inside the Transformer vs facts"),
)

EXPERIMENT = Experiment(
    name="fixed_grid",
    params=PARAMS,
    next_probes=next_probes,
    run_probes=run_probes,
    summarize=summarize,
    check=check,
    method_of=method_of,
    reporting=Reporting(
        summary_columns=("method", "whiten", "beta", "d", "num_facts", "width", "query_eps", "rho", "accuracy",
                         "margin_min", "recall_noisy", "recall"),
        aggregates=("margin_min", "accuracy", "recall_noisy", "recall", "jacobian_rel_max"),
        fractions=("accuracy", "recall_noisy", "recall"),
        view_metrics=("lipschitz_bound", "noise_scale"),
        figures=FIGURES,
        caption=captions.fixed_grid,
        findings=fixed_grid_findings,
        labels={**LABELS, "margin_min": "minimum margin γ", "num_facts": "facts, F", "beta": "spike strength β",
                "rho": "decodability ρ of the values", "query_eps": "query noise ε", "recall": "recall inside the "
                "Transformer", "recall_noisy": "recall under query noise", "accuracy": "accuracy", "d": "d"},
    ),
)
