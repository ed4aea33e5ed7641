"""Fair baselines: each baseline's setting is picked from a small grid on a held-out split.

A draw's facts are split in two, half of the edited facts and half of the untouched ones each way,
and so are the positions of the held-out text (seeded by the draw). Every setting of a baseline's
grid makes the whole edit (all edited facts); among the settings that keep the tuning part's
non-fact perplexity within 5% (all of them, if none does), the one scoring highest on the *tuning*
part is kept (on a tie, the one with the lower perplexity ratio there, then the first in grid
order), and its metrics are read on the *evaluation* part only. The swap has no knobs; it is scored on the same evaluation part, so every method is compared
on the same facts and text.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factmlp.editing.edits import EDIT_METHODS, Bench
from factmlp.editing.task import FactTask
from factmlp.mlp import GatedMLP
from factmlp.options import Options

# ≤ 4 settings per baseline: the knobs that trade reaching the edit against disturbing the rest
# (names of the method's options, ``factmlp.editing.edits``). A method without a grid is not tuned.
GRIDS: dict[str, tuple[dict, ...]] = {
    "fine_tune": ({"lr": 1e-3, "steps": 400}, {"lr": 3e-3, "steps": 100}, {"lr": 3e-3, "steps": 400},
                  {"lr": 1e-2, "steps": 100}),
    "rank_one": tuple({"ridge": ridge, "prob": prob} for ridge in (1e-3, 1e-1) for prob in (0.9, 0.99)),
    "batch_rank_one": tuple({"rtol": rtol} for rtol in (1e-3, 1e-2, 3e-2, 1e-1)),
}
PPL_BAR = 1.05  # a setting that raises the tuning part's non-fact perplexity more is picked only if all do


@dataclass(frozen=True)
class Split:
    """Fact ids and text positions whose scores pick a setting (``tune``, ``text_tune``), and those
    the reported metrics are read on (``evaluate``, ``text_evaluate``)."""

    tune: np.ndarray
    evaluate: np.ndarray
    text_tune: np.ndarray
    text_evaluate: np.ndarray


def split_facts(task: FactTask, edited: np.ndarray, text_positions: int, seed: int) -> Split:
    """Half of the edited facts (the smaller half), half of the untouched ones and half of the text
    positions tune; the rest evaluate."""
    if len(edited) < 2:
        raise ValueError(f"a tuning split needs at least 2 edited facts, got {len(edited)}")
    rng = np.random.default_rng([task.seed, seed, 31])
    kept = np.setdiff1d(np.arange(task.num_facts), edited)
    edited, kept, text = rng.permutation(edited), rng.permutation(kept), rng.permutation(text_positions)
    tune = np.sort(np.concatenate([edited[:len(edited) // 2], kept[:len(kept) // 2]]))
    half = len(text) // 2
    return Split(tune=tune, evaluate=np.setdiff1d(np.arange(task.num_facts), tune),
                 text_tune=np.sort(text[:half]), text_evaluate=np.sort(text[half:]))


def describe(setting: dict) -> str:
    """'lr=0.001 steps=400': a setting as one string for the result rows."""
    return " ".join(f"{k}={v:g}" for k, v in setting.items())


@dataclass
class Tuned:
    """The picked setting, its MLP, its score on the tuning part and what the editor reported."""

    setting: dict
    mlp: GatedMLP
    tune_score: float
    extra: dict = field(default_factory=dict)


def own_setting(method: str, options: Options) -> dict:
    """The options' own values of the knobs the method's grid tunes (a cell with ``tune`` false)."""
    return {key: getattr(options, key) for key in GRIDS[method][0]}


def tuned_edit(bench: Bench, method: str, edited: np.ndarray, mapping: np.ndarray, split: Split,
               settings: tuple[dict, ...], options: Options | Mapping[str, Any] | None = None) -> Tuned:
    """Make the edit once per setting (each replaces some of ``options``, the method's typed options)
    and keep the best on the tuning part (see the module docstring); the evaluation part is never looked at."""
    spec = EDIT_METHODS[method]
    options = spec.options.of(options)
    best, best_key = None, None
    for setting in settings:
        out = spec.edit(bench, edited, mapping, dataclasses.replace(options, **setting))
        mlp, extra = (out[0], {"ft_steps_taken": out[1]}) if isinstance(out, tuple) else (out, {})
        scores = bench.score(mlp, edited, mapping, facts=split.tune, text=split.text_tune)
        key = (scores["ppl_ratio"] <= PPL_BAR, scores["score"], -scores["ppl_ratio"])
        if best is None or key > best_key:
            best, best_key = Tuned(dict(setting), mlp, scores["score"], extra), key
    return best
