"""Stopping a GD probe once its outcome is decided (docs/science.md#early-stop).

A capacity probe records one answer: does the trained MLP decode at least a ``threshold`` fraction
of the facts? That answer is the sign of one number, the *deciding margin* q: the k-th largest
logit margin ⟨y_i, v_f(i)⟩ − max_{j≠f(i)} ⟨y_i, v_j⟩ over the facts, k = ⌈threshold·F⌉ (the facts
that must decode right; for threshold 1, the smallest margin). The full recipe runs every epoch;
the rule stops a model at a check once the sign of q cannot change in the epochs left:

- ``stored``: q > 0 at ``window`` consecutive checks and larger at each of them than at the one
  before (the model stores and is still improving: on the probes measured, q never fell back once
  this held).
- ``cannot_store``: at least ``settle`` of the learning-rate mass is spent and ``min_checks`` checks
  seen, q < 0 and |q| > ``safety`` · L · R, where R is the learning-rate mass left (Σ lr over the
  remaining epochs) and L the fastest any model of the batch has moved its q so far per unit of
  learning-rate mass (max over check intervals and models of |Δq| / Σ lr; the models of a batch
  learn the same facts). Adam moves every weight by about lr per step, so q moves about in
  proportion to the lr mass spent; the cosine schedule leaves little mass near the end, so a
  clearly failing model is stopped there instead of after the last epoch. ``settle`` and
  ``min_checks`` keep L from resting on a few early checks: in a 300-epoch recipe a probe whose q
  hardly moved in its first 100 epochs jumped by 4 in the next 50 and stored.

The rule is empirical, not a proof (a provable bound from Adam's step bound decides only in the last
~1% of epochs): tests/test_early_stop.py and benchmarks/peer_grid.py check that it never changes a
probe's outcome against the full recipe.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

STORED, CANNOT_STORE, LOSS, EPOCHS = "stored", "cannot_store", "loss", "epochs"
STOP_REASONS = (STORED, CANNOT_STORE, LOSS, EPOCHS)  # ``loss``: reached loss_stop; ``epochs``: ran them all
# A deciding margin this close to zero is never trusted: float32 logits and the float64 evaluation
# (factmlp/evaluate.py) may disagree on its sign.
MIN_DECIDING_MARGIN = 1e-3


def facts_needed(num_facts: int, threshold: float) -> int:
    """How many facts must decode right for accuracy ≥ threshold (at least 1)."""
    return max(1, min(num_facts, math.ceil(threshold * num_facts - 1e-9)))


def deciding_margin(margins: torch.Tensor, threshold: float) -> torch.Tensor:
    """q per model from the (models, facts) logit margins: the k-th largest, k = facts_needed."""
    num_facts = margins.shape[1]
    k = facts_needed(num_facts, threshold)
    return torch.kthvalue(margins, num_facts - k + 1, dim=1).values


class OutcomeRule:
    """The stop rule for a batch of models, fed q at every check; rows follow the batch as it shrinks.

    ``lr_at(step)`` is the schedule and ``epochs`` its length: the lr mass between two checks and the
    mass left are sums of it.
    """

    def __init__(self, num_models: int, lr_at: Callable[[int], float], epochs: int, *, window: int = 5,
                 safety: float = 2.0, settle: float = 0.5, min_checks: int = 20):
        if window < 1 or not safety > 0 or not 0 <= settle <= 1 or min_checks < 2:
            raise ValueError(f"need window >= 1, safety > 0, settle in [0, 1] and min_checks >= 2, got {window}, "
                             f"{safety}, {settle}, {min_checks}")
        self.window, self.safety, self.settle, self.min_checks, self.epochs = window, safety, settle, min_checks, epochs
        self.checks = 0
        self.mass = np.concatenate([[0.0], np.cumsum([lr_at(s) for s in range(epochs)])])  # mass[s]: Σ lr before s
        self.last_q = torch.full((num_models,), math.nan, dtype=torch.float64)
        self.rate = 0.0  # fastest |Δq| per unit of lr mass so far, over every model of the batch
        self.rising = torch.zeros(num_models, dtype=torch.long)  # consecutive checks with q > 0 and rising
        self.last_step: int | None = None

    def observe(self, step: int, q: torch.Tensor) -> list[str | None]:
        """q (per model, before epoch ``step``'s update); the stop reason of each model, or None."""
        q = q.detach().to("cpu", torch.float64)
        if self.last_step is not None:
            spent = self.mass[step] - self.mass[self.last_step]
            if spent > 0:
                self.rate = max(self.rate, float(((q - self.last_q).abs() / spent).nan_to_num(0.0).max()))
        self.checks += 1
        up = (q > MIN_DECIDING_MARGIN) & (q > self.last_q)
        self.rising = torch.where(up, self.rising + 1, torch.zeros_like(self.rising))
        left = self.mass[self.epochs] - self.mass[step]
        hopeless = (q < -MIN_DECIDING_MARGIN) & (q.abs() > self.safety * self.rate * left)
        if self.checks < self.min_checks or self.mass[step] < self.settle * self.mass[self.epochs]:
            hopeless[:] = False  # too few checks, or too little of the schedule seen, to trust the rate
        self.last_q, self.last_step = q, step
        return [STORED if r >= self.window else CANNOT_STORE if h else None
                for r, h in zip(self.rising.tolist(), hopeless.tolist())]

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (the models still training), in this order."""
        index = torch.as_tensor(rows, dtype=torch.long)
        self.last_q, self.rising = self.last_q[index], self.rising[index]
