"""What both Transformer experiments share (docs/science.md#inside-a-transformer): the cell
parameters, the fact MLP of a cell, and the two schedules run end to end.

``whiten`` selects the method's whitened variant as the method declares it (``factmlp.methods.whitened``:
hebbian → the hebbian_whitened method, encoder_decoder → its codes in the whitened value geometry).
"""
from __future__ import annotations

import functools
import time

import torch

from factmlp import factsets, methods
from factmlp.evaluate import evaluate
from factmlp.options import ParamError
from factmlp.experiments.sweep_params import Param, method_defaults, method_options, method_params
from factmlp.geometries import make_factset
from factmlp.train import LAPTOP_RECIPE
from factmlp.transformer import (DECODES, AttentionConfig, RecallTransformer, fresh_permutation, make_vocab,
                                 pretrain_attention, train_attention, usability)

# The methods of the registry, each with its whitened variant where it declares one; a variant that is a
# method of its own (hebbian_whitened) is reached through ``whiten`` from the method it belongs to.
VARIANTS = {name: m.whitened for name, m in methods.METHODS.items() if m.whitened is not None}
METHODS = tuple(name for name in methods.METHODS
                if name not in {v.method for owner, v in VARIANTS.items() if v.method != owner})
WHITENABLE = tuple(VARIANTS)
SCHEDULES = ("insert_then_train", "pretrain_then_swap")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
EPS = (0.05, 0.1, 0.2)


def _describe(variant) -> str:
    return variant.method + "".join(f" with {k}={v}" for k, v in variant.options.items())


COMMON = {
    "method": Param(str, choices=METHODS, doc="gd or a construction"),
    "whiten": Param(bool, False, doc="the method's whitened variant: " + ", ".join(
        f"{m} -> {_describe(v)}" for m, v in VARIANTS.items())),
    "geometry": Param(str, "spherical", choices=("spherical", "spike"), doc="unit-norm keys only (the frozen norm)"),
    "beta": Param(float, 0.0, low=0.0, high=1e3, doc="spike strength (geometry spike)"),
    "d": Param(int, low=2, high=1 << 14, doc="embedding dimension"),
    "width": Param(int, low=1, high=1 << 20, doc="hidden width m of the fact MLP"),
    "seed": Param(int, 0, low=0, doc="fact-set, junk, attention-init and sampling seed"),
    "num_junk": Param(int, 9, low=1, high=4096, doc="J junk token types"),
    "junk_len": Param(int, 9, low=1, high=4096, doc="L junk tokens before and after the key"),
    "attn_steps": Param(int, 2000, low=0, doc="most AdamW steps for W_q, W_k"),
    "attn_lr": Param(float, 1e-2, low=0.0, low_open=True, doc="AdamW learning rate (paper: 2e-4)"),
    "attn_weight_decay": Param(float, 0.1, low=0.0),
    "attn_batch": Param(int, 256, low=1, high=1 << 20, doc="sequences per step (paper: 1280)"),
    "stop_recall": Param(float, 0.995, low=0.0, high=1.0,
                         doc="attention training stops once recall on one junk draw per fact reaches this (paper: "
                             "0.99; 0.995 by default because that check's sampling error is ±0.4% at F = 512)"),
    "check_every": Param(int, 50, low=1, doc="steps between recall checks"),
    "eval_repeats": Param(int, 4, low=1, high=1024, doc="junk draws per fact when measuring recall"),
    "dtype": Param(str, "float64", choices=tuple(DTYPES), doc="the Transformer's arithmetic"),
    "decode": Param(str, "vocab", choices=DECODES, doc="argmax over every token (an LM) or the fact tokens only"),
    # The options of each method and whitened variant; ``whiten`` sets the options a variant fixes.
    **method_params(dict.fromkeys(METHODS + tuple(v.method for v in VARIANTS.values())),
                    defaults={**method_defaults("gd", LAPTOP_RECIPE), "data_dependent_cg_iters": 10},
                    exclude=[f"{v.method}_{k}" for v in VARIANTS.values() for k in v.options]),
}

LABELS = {"params": "MLP parameters, W", "swap_recall": "recall after swap-in (pretrain-then-swap)",
          "jacobian_rel_max": "max relative Jacobian norm ‖J(k)‖·‖k‖/‖g(k)‖",
          "recall_eps_0p1": "recall under query noise ε = 0.1", "whiten": "whitened",
          "max_facts": "facts recalled inside the Transformer", "max_facts_standalone": "facts stored standalone",
          "method": "method", "width": "hidden width, m", "num_facts": "facts, F"}


def variant(cell: dict) -> tuple[str, dict]:
    """The method the cell's MLP is built with (the whitened variant's when ``whiten``) and the
    options whitening fixes."""
    if not cell["whiten"]:
        return cell["method"], {}
    whitened = methods.whitened(cell["method"])
    return whitened.method, dict(whitened.options)


def method_of(cell: dict) -> str:
    """The method whose options the cell carries."""
    return variant(cell)[0]


def check(cell: dict) -> None:
    if cell["beta"] and cell["geometry"] != "spike":
        raise ParamError('beta', f"got {cell['beta']} with geometry {cell['geometry']!r}; "
                         "allowed: 0 unless geometry spike")


@functools.lru_cache(maxsize=8)
def _factset(geometry: str, beta: float, d: int, num_facts: int, seed: int) -> factsets.FactSet:
    return make_factset(geometry, d, num_facts, seed, beta=beta)


def factset_of(cell: dict, num_facts: int) -> factsets.FactSet:
    return _factset(cell["geometry"], cell["beta"], cell["d"], num_facts, cell["seed"])


def _attention_config(cell: dict) -> AttentionConfig:
    return AttentionConfig(steps=cell["attn_steps"], lr=cell["attn_lr"], weight_decay=cell["attn_weight_decay"],
                           batch=cell["attn_batch"], stop_recall=cell["stop_recall"],
                           check_every=cell["check_every"], junk_len=cell["junk_len"], seed=cell["seed"])


def build_mlp(cell: dict, factset: factsets.FactSet) -> torch.nn.Module:
    """The fact MLP of the cell's method (or its whitened variant) for this fact set, on the CPU."""
    name, fixed = variant(cell)
    options = {**method_options(cell, name), **fixed}
    return methods.build_fact_mlp(name, factset, cell["width"], seed=cell["seed"], options=options, device="cpu")


@functools.lru_cache(maxsize=4)
def _pretrained(geometry, beta, d, num_facts, seed, num_junk, config: AttentionConfig, dtype: str, decode: str):
    """Schedule (b)'s attention depends on neither the method nor the width: train it once per worker."""
    return pretrain_attention(_factset(geometry, beta, d, num_facts, seed), config, num_junk=num_junk,
                              dtype=DTYPES[dtype], decode=decode)


def run_schedule(cell: dict, schedule: str, num_facts: int, *, metrics: bool = True) -> dict:
    """One schedule end to end; returns the flat row of recall and usability metrics."""
    base = factset_of(cell, num_facts)
    config = _attention_config(cell)
    start = time.perf_counter()
    if schedule == "insert_then_train":
        factset = base
        mlp = build_mlp(cell, factset)
        build_seconds = time.perf_counter() - start
        model = RecallTransformer(make_vocab(factset, cell["num_junk"], cell["seed"]), mlp,
                                  seed=cell["seed"], dtype=DTYPES[cell["dtype"]], decode=cell["decode"])
        stats = train_attention(model, factset.mapping, config)
    elif schedule == "pretrain_then_swap":
        # Cached per worker: ``seconds`` includes pretraining only for the probe that ran it.
        pre, stats = _pretrained(cell["geometry"], cell["beta"], cell["d"], num_facts, cell["seed"],
                                 cell["num_junk"], config, cell["dtype"], cell["decode"])
        factset = factsets.FactSet(base.keys, base.values, fresh_permutation(num_facts, cell["seed"]))
        built = time.perf_counter()
        mlp = build_mlp(cell, factset)
        build_seconds = time.perf_counter() - built
        model = pre.with_mlp(mlp, make_vocab(factset, cell["num_junk"], cell["seed"]))
    else:
        raise ParamError('schedule', f"got {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    params = sum(p.numel() for p in mlp.parameters())
    standalone = evaluate(mlp, factset)["accuracy"]
    row = usability(model, factset, standalone, eps=EPS, repeats=cell["eval_repeats"], junk_len=cell["junk_len"],
                    seed=cell["seed"], jacobians=metrics)
    return {"params": params, "attn_steps_run": stats["steps"], "attn_train_recall": stats["train_recall"],
            "build_seconds": build_seconds, "seconds": time.perf_counter() - start, **row}
