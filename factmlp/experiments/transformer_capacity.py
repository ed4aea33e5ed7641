"""transformer_capacity: the most facts a fixed-width MLP stores alone and inside the Transformer
(docs/science.md#inside-a-transformer, docs/transformer.md).

A cell fixes the width; a probe is one number of facts F (in one of two settings, the Transformer
schedule or the MLP standalone), and a pure search finds the largest F that each setting stores at
the threshold, then checks that success is monotone in F around it. Capacity in the Transformer
against capacity alone shows the capacity–usability tradeoff in one number per cell.
"""
from __future__ import annotations

import time

from factmlp.evaluate import evaluate
from factmlp.experiments import captions
from factmlp.experiments.sweep_params import Param
from factmlp.experiments.transformer_schedules import (COMMON, LABELS, SCHEDULES, build_mlp, check, factset_of,
                                                      method_of, run_schedule)
from factmlp.experiments.verdicts import against, by, fmt, paired, seeds_of, summary
from orchestrator.experiment import Experiment, FigureSpec, ParamError, Reporting, is_set
from orchestrator.search import Independent, LargestSuccess

SETTINGS = ("transformer", "standalone")
# The summary's columns of each setting: the largest F stored, the F up to which every probed F
# stored, and whether success fell monotonically with F.
COLUMNS = {"transformer": ("max_facts", "stable_facts", "monotone_transformer"),
           "standalone": ("max_facts_standalone", "stable_facts_standalone", "monotone_standalone")}
WHERE = {"transformer": "inside the Transformer", "standalone": "alone"}

# The largest F stored, searched in each setting on its own probes: recall inside the Transformer
# against threshold, the MLP's accuracy alone against standalone_threshold.
_RANGE = dict(
    low=Param(int, 64, low=2, doc="smallest F searched"),
    high=Param(int, 4096, low=2, high=1 << 22, doc="largest F searched"),
    arity=Param(int, 1, low=1, high=64, doc="values of F probed per round and setting"),
    grid_key="facts_step",
    grid=Param(int, 16, low=1, doc="F is searched on multiples of this step (within the range)"),
    verify=Param(bool, True, doc="once the largest F stored, n·step, is found, probe (n+2)·step and "
                 "(n+3)·step above it and n−1, n−2, ⌊0.95n⌋, ⌊0.9n⌋ steps below (and below any of "
                 "those that fails), so a flicker in F is flagged as non-monotone"),
)
FACTS = {
    "transformer": LargestSuccess("num_facts", **_RANGE, success=lambda cell, row: row["recall"] >= cell["threshold"]),
    "standalone": LargestSuccess("num_facts", **_RANGE,
                                 success=lambda cell, row: row["mlp_accuracy"] >= cell["standalone_threshold"]),
}
SEARCH = Independent("setting", FACTS)

PARAMS = {
    **COMMON,
    "schedule": Param(str, "pretrain_then_swap", choices=SCHEDULES, doc="the Transformer setting's schedule"),
    "threshold": Param(float, 0.99, low=0.0, high=1.0, low_open=True, doc="recall that counts as stored"),
    "standalone_threshold": Param(float, 0.99, low=0.0, high=1.0, low_open=True,
                                  doc="standalone accuracy that counts as stored (as threshold by default, so "
                                      "usable_fraction compares like with like; 1.0 is the standalone definition)"),
    **SEARCH.params,
}


def capacity_run(cell: dict, probes: list[dict]) -> list[dict]:
    rows = []
    for p in probes:
        num_facts = int(p["num_facts"])
        if p["setting"] == "transformer":
            row = run_schedule(cell, cell["schedule"], num_facts, metrics=False)
            row["success"] = row["recall"] >= cell["threshold"]
        elif p["setting"] == "standalone":
            start = time.perf_counter()
            factset = factset_of(cell, num_facts)
            mlp = build_mlp(cell, factset)
            scores = evaluate(mlp, factset)
            row = {"params": sum(q.numel() for q in mlp.parameters()), "mlp_accuracy": scores["accuracy"],
                   "margin_min": scores["margin_min"], "seconds": time.perf_counter() - start,
                   "success": scores["accuracy"] >= cell["standalone_threshold"]}
        else:
            raise ParamError('setting', f"got {p['setting']!r}; allowed: {', '.join(SETTINGS)}")
        rows.append(row)
    return rows


def capacity_summary(cell: dict, results: list[dict]) -> dict:
    out = {}
    steps = SEARCH.observe(cell, results)
    for setting, (best, stable, monotone) in COLUMNS.items():
        step = steps[setting]
        out.update({best: step.answer, stable: step.stable, monotone: step.monotone})
    # Constructions may build fewer units than the width allows (encoder_decoder): the parameters of
    # the MLP at the largest F stored in the Transformer, else at any probe.
    at_best = [r for r in results if r["setting"] == "transformer" and int(r["num_facts"]) == out["max_facts"]]
    params = [r["params"] for r in at_best + results if r.get("params") == r.get("params") and "params" in r]
    out["params"] = int(params[0]) if params else None
    out["usable_fraction"] = (out["max_facts"] / out["max_facts_standalone"]
                              if out["max_facts"] and out["max_facts_standalone"] else None)
    out["num_probes"] = len(results)
    return out


def _flagged(cell: dict) -> list[str]:
    """The settings of a cell whose success was not monotone in F."""
    return [s for s in SETTINGS if is_set(cell.get(COLUMNS[s][2])) and not cell[COLUMNS[s][2]]]


def cell_note(cell: dict) -> str:
    """Non-monotone success: an F below the largest F stored failed, so that answer needs a second look."""
    notes = []
    for setting in _flagged(cell):
        best, stable, _ = (cell.get(c) for c in COLUMNS[setting])
        upto = (f"every probed F up to {stable:.0f} stores" if is_set(stable)
                else "no F within half of it below which every probe stores")
        notes.append(f"† non-monotone {WHERE[setting]}: stores at {best:.0f} but fails at a smaller F; {upto}")
    return "; ".join(notes)


def findings(cells: list[dict], fits: list[dict]) -> str:
    """The capacity–usability tradeoff in facts, per method and width, paired by seed: does whitening
    raise the facts an MLP stores alone, and the facts it delivers inside the Transformer?"""
    lines = ["Verdicts need ≥ 3 seeds and an interval wholly on one side of 0; otherwise inconclusive."]
    for (method, d, width), rows in by(cells, ("method", "d", "width")).items():
        plain = [r for r in rows if not r["whiten"]]
        white = [r for r in rows if r["whiten"]]
        name = f"{method}, d = {d}, width {width} (seeds {seeds_of(rows)})"
        for setting in SETTINGS:
            flagged = [r for r in rows if setting in _flagged(r)]
            if flagged:
                where = ", ".join(f"{'whitened' if r['whiten'] else 'plain'} seed {r.get('seed', 0)}" for r in flagged)
                lines.append(f"- {name}: † success was not monotone in F {WHERE[setting]} in {len(flagged)} of "
                             f"{len(rows)} cells ({where}): an F below the largest stored failed; their cells "
                             "are marked † in the table.")
        if not plain or not white:
            continue
        for column, where in (("max_facts_standalone", "alone"), ("max_facts", "inside the Transformer")):
            for variant, group in (("plain", plain), ("whitened", white)):
                below = [r for r in group if not is_set(r.get(column))]
                if below:
                    lines.append(f"- {name}: {variant}, in {len(below)} of {len(group)} seed(s) (seeds "
                                 f"{seeds_of(below)}) no probed F is stored {where} (the lowest, "
                                 f"{below[0].get('search_low', '?')}, failed, and with verification the next two "
                                 "grid F too), so no difference is computed for them.")
            verdict, numbers = against(paired(white, plain, column), 0.0, resolution=(
                f"F is searched on multiples of {rows[0].get('facts_step', '?')}: answers closer than that read the same"))
            lines.append(f"- {name}: whitening raises the facts stored {where}: {verdict}. F(whitened) − F(plain) = "
                         f"{numbers}; plain {fmt(summary([r.get(column) for r in plain])[0])}, whitened "
                         f"{fmt(summary([r.get(column) for r in white])[0])}.")
        verdict, numbers = against(paired(plain, white, "usable_fraction"), 0.0)
        lines.append(f"- {name}: whitening lowers the usable fraction (facts inside / facts alone): {verdict}. "
                     f"Plain − whitened = {numbers}.")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="transformer_capacity",
    params=PARAMS,
    run_probes=capacity_run,
    summarize=capacity_summary,
    check=check,
    search=SEARCH,
    method_of=method_of,
    reporting=Reporting(
        summary_columns=("method", "whiten", "d", "width", "schedule", "params", "max_facts_standalone", "max_facts",
                         "usable_fraction"),
        view_metrics=("monotone_transformer", "monotone_standalone", "stable_facts", "stable_facts_standalone"),
        trajectory=("num_facts", "success"),
        aggregates=("max_facts_standalone", "max_facts", "usable_fraction"),
        findings=findings,
        cell_note=cell_note,
        figures=(
            FigureSpec("facts_in_transformer_vs_params", "params", "max_facts", "method", "whiten",
                       title="Facts recalled inside the Transformer against MLP parameters"),
            FigureSpec("facts_standalone_vs_params", "params", "max_facts_standalone", "method", "whiten",
                       title="Facts stored standalone against MLP parameters"),
        ),
        labels=LABELS,
        caption=captions.transformer,
    ),
)
