"""Fact editing: MLP swap against fine-tuning and a rank-one edit (docs/science.md#fact-editing,
docs/editing.md).

A cell is (task, model, fact-MLP method, its options and width, edit method, edit fraction); a probe
is one random draw of the edited facts (``draw``), the same draw for every edit method. The trained
base model is cached per worker process, so the probes and cells that share it train it once per
process; the training is seeded, so processes with the same thread count (the worker sets it from
the task's CPUs) get the same model.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from factmlp.editing import Bench, LMConfig, batch_rank_one, choose_edits, fine_tune, make_task, rank_one, swap, train_lm
from factmlp.editing.task import TEMPLATES
from factmlp.experiments.verdicts import against, by, fmt, paired, seeds_of, summary
from orchestrator.experiment import Experiment
from factmlp.experiments.sweep_params import Param, method_options, method_params
from factmlp.methods import METHODS

EDIT_METHODS = ("swap", "fine_tune", "rank_one", "batch_rank_one")

PARAMS = {
    "edit_method": Param(str, choices=EDIT_METHODS,
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
    "ft_steps": Param(int, 500, low=0, doc="fine_tune: most Adam steps"),
    "ft_lr": Param(float, 1e-3, low=0.0, low_open=True, doc="fine_tune: Adam learning rate"),
    "ft_weights": Param(str, "all", choices=("all", "down"), doc="fine_tune: which MLP weights move"),
    "rome_ridge": Param(float, 1e-3, low=0.0, low_open=True, doc="rank_one, batch_rank_one: ridge of the key covariance"),
    "rome_steps": Param(int, 200, low=0, doc="rank_one: most Adam steps for the target outputs"),
    "rome_lr": Param(float, 0.05, low=0.0, low_open=True),
    "rome_prob": Param(float, 0.95, low=0.0, high=1.0, low_open=True,
                       doc="rank_one: target-output optimisation stops when p(new) reaches this"),
    "batch_rtol": Param(float, 1e-2, low=0.0, high=1.0,
                        doc="batch_rank_one: relative eigenvalue cut of the pseudo-inverse"),
    "device": Param(str, "cpu", choices=("cpu", "auto"),
                    doc="where the base model trains and fact MLPs are built (GD, the encoder–decoder's solve)"),
    **method_params(METHODS, defaults={"gd_epochs": 3000, "gd_lr": 1e-2}),
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
    mlp = swap(task, task.mapping, cell["fact_mlp"], cell["width"], cell["seed"], dict(options), device=cell["device"])
    config = LMConfig(steps=cell["lm_steps"], batch=cell["lm_batch"], lr=cell["lm_lr"], seed=cell["seed"],
                      model_dim=cell["model_dim"], heads=cell["heads"], head_dim=cell["head_dim"], device=cell["device"])
    model, history = train_lm(task, mlp, config)
    bench = Bench.build(task, model, text_sequences=cell["text_sequences"], device=config.torch_device())
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


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    """Edit a fresh copy of the base model's MLP per probe and score it; the base model never changes."""
    bench, info = _base(*_base_key(cell))
    rows = []
    for probe in probes:
        draw = int(probe["draw"])
        edited, mapping = choose_edits(bench.task, cell["edit_fraction"], draw)
        start = time.perf_counter()
        extra = {}
        if cell["edit_method"] == "swap":
            mlp = swap(bench.task, mapping, cell["fact_mlp"], cell["width"], cell["seed"],
                       method_options(cell, cell["fact_mlp"]), device=cell["device"])
        elif cell["edit_method"] == "fine_tune":
            mlp, steps = fine_tune(bench, edited, mapping, steps=cell["ft_steps"], lr=cell["ft_lr"],
                                   weights=cell["ft_weights"])
            extra["ft_steps_taken"] = steps
        else:
            common = dict(ridge=cell["rome_ridge"], steps=cell["rome_steps"], lr=cell["rome_lr"], prob=cell["rome_prob"])
            mlp = (rank_one(bench, edited, mapping, **common) if cell["edit_method"] == "rank_one"
                   else batch_rank_one(bench, edited, mapping, rtol=cell["batch_rtol"], **common))
        seconds = time.perf_counter() - start
        rows.append({**bench.score(mlp, edited, mapping), "edits": len(edited), "edit_seconds": seconds,
                     **info, **extra})
    return rows


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
    return out


def findings(cells: list[dict], fits: list[dict]) -> str:
    """The paper's editing claim per fact MLP and edit fraction, judged over seeds: swapping the
    whole MLP scores higher than each baseline (paired by seed: the same task and edits), and it
    disturbs non-fact tokens minimally (perplexity ratio below 1.05)."""
    lines = ["Verdicts need ≥ 3 seeds and an interval wholly on one side of the bar; otherwise inconclusive."]
    for (fact_mlp, width, fraction), rows in by(cells, ("fact_mlp", "width", "edit_fraction")).items():
        methods = by(rows, ("edit_method",))
        swap = methods.get(("swap",))
        if not swap:
            continue
        name = f"{fact_mlp} (width {width}), {fraction:.0%} of facts edited (seeds {seeds_of(swap)})"
        for (rival,), other in methods.items():
            if rival == "swap":
                continue
            verdict, numbers = against(paired(swap, other, "score"), 0.0)
            lines.append(f"- {name}: swap scores higher than {rival}: {verdict}. Score(swap) − score({rival}) = "
                         f"{numbers}.")
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
    summary_columns=("fact_mlp", "width", "edit_fraction", "edit_method", "score", "efficacy", "paraphrase",
                     "specificity", "ppl_ratio", "edits", "base_accuracy"),
    trajectory=("draw", "score"),
    aggregates=("score", "efficacy", "paraphrase", "specificity", "ppl_ratio"),
    findings=findings,
    method_of=lambda cell: cell["fact_mlp"],
)
