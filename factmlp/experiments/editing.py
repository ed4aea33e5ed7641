"""Fact editing: MLP swap against fine-tuning and a rank-one edit (docs/science.md#fact-editing,
docs/editing.md).

A cell is (task, model, fact-MLP method, its options and width, edit method, edit fraction); a probe
is one random draw of the edited facts (``draw``), the same draw for every edit method. Each draw's
facts are split in a tuning and an evaluation half (``factmlp.editing.tuning``): a baseline's setting
is picked from its grid on the tuning half, and every method's metrics are read on the evaluation
half. The trained base model is cached per worker process and cells start grouped by base model
(``order``), so the probes and cells that share it train it once per process; the training is
seeded, so processes with the same thread count (the worker sets it from the task's CPUs) get the
same model.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections import Counter

import numpy as np

from factmlp.editing import Bench, LMConfig, choose_edits, make_task, swap, train_lm
from factmlp.editing.edits import EDIT_METHODS
from factmlp.editing.task import TEMPLATES
from factmlp.editing.tuning import GRIDS, describe, own_setting, split_facts, tuned_edit
from factmlp.experiments.verdicts import DIFFERENCE, against, by, fmt, paired, seeds_of, summary
from factmlp.experiments import captions
from orchestrator.experiment import Experiment, FigureSpec, ParamError, Reporting
from factmlp.experiments.sweep_params import (Param, method_defaults, method_options, method_params, shared_options,
                                              shared_params)
from factmlp.methods import METHODS
from factmlp.train import LAPTOP_RECIPE

PARAMS = {
    "edit_method": Param(str, choices=tuple(EDIT_METHODS),
                         doc="swap the whole MLP, fine-tune it, sequential rank-one edits or one batched edit"),
    "edit_fraction": Param(float, 0.1, low=0.0, high=1.0, low_open=True, doc="fraction of facts edited"),
    "draws": Param(int, 1, low=1, high=1000, doc="random edit sets per cell (one probe each)"),
    "num_facts": Param(int, 512, low=2, high=1 << 20, doc="books F"),
    "num_attributes": Param(int, 0, low=0, high=1 << 20, doc="authors; 0 = as many as books (a permutation)"),
    "d": Param(int, 64, low=1, high=4096, doc="fact embedding dimension"),
    "seed": Param(int, 0, low=0, doc="task, fact MLP and model seed"),
    "num_edit_templates": Param(int, 6, low=1, high=len(TEMPLATES) - 1,
                                doc=f"templates edits are given in; the other {len(TEMPLATES)} - n are paraphrases"),
    "word_fact_embeddings": Param(str, "random", choices=("random", "zero"),
                                  doc="fact embeddings of non-subject tokens: random unit vectors or none"),
    "filler_words": Param(int, 32, low=2, high=4096),
    "filler_length": Param(int, 12, low=0, high=4096, doc="filler tokens per sequence"),
    "fact_mlp": Param(str, "gd", choices=tuple(METHODS), doc="how fact MLPs are made, for the base model and the swap"),
    "width": Param(int, 24, low=1, high=1 << 20, doc="hidden width of the fact MLP"),
    "lm_steps": Param(int, 600, low=1, doc="training steps of the Transformer (fact MLP frozen)"),
    "lm_batch": Param(int, 64, low=1),
    "lm_lr": Param(float, 3e-3, low=0.0, low_open=True),
    "model_dim": Param(int, 64, low=1, high=8192, doc="width of the learned part of the stream"),
    "heads": Param(int, 2, low=1, high=64, doc="language heads"),
    "head_dim": Param(int, 32, low=1, high=1024),
    "text_sequences": Param(int, 256, low=1, doc="held-out sequences for the non-fact perplexity"),
    "tune": Param(bool, True, doc="fine_tune, rank_one, batch_rank_one: pick the setting from the method's grid "
                                  "(factmlp/editing/tuning.py) on the tuning half of each draw; false: the "
                                  "cell's own ft_lr/ft_steps, rome_ridge/rome_prob or batch_rtol"),
    **shared_params(m.options for m in EDIT_METHODS.values()),  # ft_*, rome_*, batch_*: every cell carries them
    "device": Param(str, "cpu", choices=("cpu", "auto"),
                    doc="where the base model trains and fact MLPs are built (GD, the encoder–decoder's solve)"),
    **method_params(METHODS, defaults=method_defaults("gd", LAPTOP_RECIPE)),
}

BASE_KEYS = ("num_facts", "num_attributes", "d", "seed", "num_edit_templates", "word_fact_embeddings",
             "filler_words", "filler_length", "fact_mlp", "width", "lm_steps", "lm_batch", "lm_lr", "model_dim",
             "heads", "head_dim", "text_sequences", "device")


def _base_key(cell: dict) -> tuple[tuple, tuple]:
    """What the base model depends on: the task, the model, and the fact MLP's method and options."""
    return tuple(cell[k] for k in BASE_KEYS), tuple(sorted(method_options(cell, cell["fact_mlp"]).items()))


@functools.lru_cache(maxsize=2)
def _base(values: tuple, options: tuple) -> tuple[Bench, dict]:
    """The trained base model and its bench, once per worker process for each base configuration."""
    cell = dict(zip(BASE_KEYS, values))
    start = time.perf_counter()
    task = make_task(cell["num_facts"], cell["num_attributes"], cell["d"], cell["seed"],
                     num_edit_templates=cell["num_edit_templates"], num_filler_words=cell["filler_words"],
                     filler_length=cell["filler_length"], word_fact_embeddings=cell["word_fact_embeddings"])
    rebuild = functools.partial(swap, task, method=cell["fact_mlp"], width=cell["width"], seed=cell["seed"],
                                options=dict(options), device=cell["device"])
    mlp = rebuild(task.mapping)
    config = LMConfig(steps=cell["lm_steps"], batch=cell["lm_batch"], lr=cell["lm_lr"], seed=cell["seed"],
                      model_dim=cell["model_dim"], heads=cell["heads"], head_dim=cell["head_dim"], device=cell["device"])
    model, history = train_lm(task, mlp, config)
    bench = Bench.build(task, model, text_sequences=cell["text_sequences"], device=config.torch_device(),
                        rebuild=rebuild)
    every = tuple(range(len(task.templates)))
    info = {
        "base_accuracy": float(bench.hits(model.mlp, np.arange(task.num_facts), every, task.mapping).double().mean()),
        "base_ppl": float(bench.nll(model.mlp).mean().exp()),
        "lm_loss": history[-1], "mlp_params": model.mlp.param_count(), "base_seconds": time.perf_counter() - start,
    }
    return bench, info


def next_probes(cell: dict, results: list[dict]) -> list[dict]:
    done = {int(r["draw"]) for r in results}
    return [{"draw": i} for i in range(cell["draws"]) if i not in done]


def edit_options(cell: dict, draw: int):
    """The typed options of the cell's edit method; one that draws random numbers (a plain ``seed``
    field, fine-tuning's replayed batches) draws them by the probe's draw."""
    options = shared_options(cell, EDIT_METHODS[cell["edit_method"]].options)
    if "seed" in {f.name for f in dataclasses.fields(options)}:
        options = dataclasses.replace(options, seed=draw)
    return options


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    """Edit a fresh copy of the base model's MLP per probe and score it on the draw's evaluation half;
    the base model never changes."""
    bench, info = _base(*_base_key(cell))
    method = cell["edit_method"]
    edit = EDIT_METHODS[method].edit
    rows = []
    for probe in probes:
        draw = int(probe["draw"])
        edited, mapping = choose_edits(bench.task, cell["edit_fraction"], draw)
        split = split_facts(bench.task, edited, len(bench.text.z), draw)
        start = time.perf_counter()
        extra = {}
        options = edit_options(cell, draw)
        if method not in GRIDS:  # the swap: nothing to tune
            mlp = edit(bench, edited, mapping, options)
        else:
            settings = GRIDS[method] if cell["tune"] else (own_setting(method, options),)
            tuned = tuned_edit(bench, method, edited, mapping, split, settings, options)
            mlp = tuned.mlp
            extra = {"tuned_setting": describe(tuned.setting), "tune_score": tuned.tune_score,
                     **{f"tuned_{k}": float(v) for k, v in tuned.setting.items()}, **tuned.extra}
        seconds = time.perf_counter() - start
        scores = bench.score(mlp, edited, mapping, facts=split.evaluate, text=split.text_evaluate)
        rows.append({**scores, "edits": len(edited), "eval_edits": len(np.intersect1d(edited, split.evaluate)),
                     "edit_seconds": seconds, **info, **extra})
    return rows


def check(cell: dict) -> None:
    """The split needs two edited facts: one to tune on, one to report."""
    edits = max(1, int(round(cell["edit_fraction"] * cell["num_facts"])))
    if edits < 2:
        raise ParamError("edit_fraction", f"got {cell['edit_fraction']}, {edits} edited fact of {cell['num_facts']}; "
                                          "allowed: at least 2 edited facts (half tune the baselines, half evaluate)")


METRICS = ("score", "efficacy", "paraphrase", "specificity", "ppl_ratio", "old_kept")


def summarize(cell: dict, results: list[dict]) -> dict:
    """Means over the draws (and the spread of the score), plus the base model's own numbers."""
    out = {m: float(np.mean([r[m] for r in results])) for m in METRICS}
    out["score_min"] = float(min(r["score"] for r in results))
    out["ppl_ratio_max"] = float(max(r["ppl_ratio"] for r in results))
    for key in ("edits", "base_accuracy", "base_ppl", "lm_loss", "mlp_params"):
        out[key] = results[0][key]
    out["edit_seconds"] = float(np.mean([r["edit_seconds"] for r in results]))
    out["num_draws"] = len(results)
    out["eval_edits"] = results[0]["eval_edits"]
    picked = Counter(r["tuned_setting"] for r in results if isinstance(r.get("tuned_setting"), str))
    if picked:  # the baselines: each draw's picked setting, the most frequent first
        out["tuned_setting"] = "; ".join(f"{s} ×{n}" for s, n in picked.most_common())
        out["tune_score"] = float(np.mean([r["tune_score"] for r in results]))
    return out


def _picked(rows: list[dict]) -> str:
    """'lr=0.01 steps=400 in 19 of 20 draws, ...': the settings picked over the cells' draws."""
    counts = Counter()
    for row in rows:
        for part in str(row.get("tuned_setting") or "").split("; "):
            if " ×" in part:
                setting, n = part.rsplit(" ×", 1)
                counts[setting] += int(n)
    total = sum(counts.values())
    return ", ".join(f"{s} in {n} of {total} draws" for s, n in counts.most_common()) or "not recorded"


def findings(cells: list[dict], fits: list[dict]) -> str:
    """The paper's editing claim per fact MLP and edit fraction, judged over seeds: swapping the
    whole MLP scores higher than each baseline (paired by seed: the same task and edits), and it
    disturbs non-fact tokens minimally (perplexity ratio below 1.05). Every number is from the draws'
    evaluation halves; each comparison names the baseline settings the tuning halves picked."""
    lines = ["Verdicts need ≥ 3 seeds and an interval wholly on one side of the bar; otherwise inconclusive. "
             "Every metric is read on the held-out evaluation half of each draw (half of the edited and half of "
             "the untouched facts, half of the text positions); each baseline's setting was picked from its grid "
             "on the other, tuning half."]
    for (fact_mlp, width, fraction), rows in by(cells, ("fact_mlp", "width", "edit_fraction")).items():
        methods = by(rows, ("edit_method",))
        swap = methods.get(("swap",))
        if not swap:
            continue
        name = f"{fact_mlp} (width {width}), {fraction:.0%} of facts edited (seeds {seeds_of(swap)})"
        for (rival,), other in methods.items():
            if rival == "swap":
                continue
            verdict, numbers = against(paired(swap, other, "score"), 0.0, bounds=DIFFERENCE,
                                       resolution="the score does not separate the two methods on these draws")
            lines.append(f"- {name}: swap scores higher than {rival}: {verdict}. Score(swap) − score({rival}) = "
                         f"{numbers}. {rival}'s setting, picked on the tuning half: {_picked(other)}.")
        verdict, numbers = against([r.get("ppl_ratio") for r in swap], 1.05, above=False)
        lines.append(f"- {name}: swap leaves non-fact perplexity within 5%: {verdict}. Perplexity ratio {numbers}; "
                     f"score {fmt(summary([r.get('score') for r in swap])[0])}.")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="fact_editing",
    params=PARAMS,
    next_probes=next_probes,
    run_probes=run_probes,
    summarize=summarize,
    check=check,
    order=lambda cell: _base_key(cell),  # cells sharing a base model start together: each worker trains it once
    method_of=lambda cell: cell["fact_mlp"],
    reporting=Reporting(
        summary_columns=("fact_mlp", "width", "edit_fraction", "edit_method", "score", "efficacy", "paraphrase",
                         "specificity", "ppl_ratio", "edits", "base_accuracy"),
        trajectory=("draw", "score"),
        aggregates=("score", "efficacy", "paraphrase", "specificity", "ppl_ratio"),
        fractions=("score", "efficacy", "paraphrase", "specificity"),
        findings=findings,
        figures=(
            FigureSpec("scores_by_method", "edit_fraction", "score", "edit_method", kind="intervals", facet="fact_mlp",
                       log_x=False, log_y=False, top=1.0, title="Edit score by method and fraction of facts edited"),
        ),
        labels={"score": "edit score (evaluation half)", "edit_fraction": "fraction of facts edited",
                "edit_method": "edit method", "fact_mlp": "fact MLP", "width": "width"},
        caption=captions.editing,
    ),
)
