"""Fact editing by swapping the whole fact MLP, against fine-tuning and a rank-one edit
(docs/science.md#fact-editing).

task: the synthetic book → author language; model: the one-layer Transformer whose MLP is the fact
store, and its training; edits: the edit methods and the bench that scores them; metrics; tuning: the
baselines' grids, picked on a held-out split of the facts.
"""
from factmlp.editing.edits import Bench, batch_rank_one, choose_edits, fine_tune, rank_one, rank_one_update, swap
from factmlp.editing.metrics import Readout, edit_metrics, harmonic_mean
from factmlp.editing.model import FactLM, LMConfig, train_lm
from factmlp.editing.task import FactTask, make_task, render, sample
from factmlp.editing.tuning import GRIDS, Split, split_facts, tuned_edit

__all__ = ["Bench", "batch_rank_one", "FactLM", "FactTask", "GRIDS", "LMConfig", "Readout", "Split", "choose_edits",
           "edit_metrics", "fine_tune", "harmonic_mean", "make_task", "rank_one", "rank_one_update", "render", "sample",
           "split_facts", "swap", "train_lm", "tuned_edit"]
