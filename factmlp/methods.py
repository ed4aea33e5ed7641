"""Every way to make a fact MLP, by name: gradient descent and the constructions.

``build_fact_mlp(method, factset, width, *, seed, options)`` serves every experiment (capacity, the
Transformer studies, editing); ``options`` is the method's typed options object or a mapping of its
option names. Each method's options and whitened variant are declared beside its function
(``factmlp.train.GD``, ``factmlp.constructions``), so nothing here changes when an option is added.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from factmlp.constructions import CONSTRUCTIONS, check_factset
from factmlp.factsets import FactSet
from factmlp.mlp import GatedMLP
from factmlp.options import Method, Options, ParamError, Whitened
from factmlp.train import GD

METHODS: dict[str, Method] = {"gd": GD, **dict(sorted(CONSTRUCTIONS.items()))}


def method(name: str) -> Method:
    if name not in METHODS:
        raise ParamError('method', f"got {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name]


def whitened(name: str) -> Whitened:
    """The method's whitened variant (declared beside it); ValueError if it has none."""
    variant = method(name).whitened
    if variant is None:
        allowed = ", ".join(n for n, m in METHODS.items() if m.whitened is not None)
        raise ParamError('whiten', f"method {name!r} has no whitened variant; allowed: {allowed}")
    return variant


def options_of(name: str, options: Options | Mapping[str, Any] | None = None, *, device: str | None = None):
    """The method's typed options from ``options``; ``device`` is applied where the method has one."""
    cls = method(name).options
    typed = cls.of(options)
    if device is not None and "device" in {f.name for f in dataclasses.fields(cls)}:
        typed = dataclasses.replace(typed, device=device)
    return typed


def build_fact_mlps(name: str, factset: FactSet, widths: list[int], *, seed: int = 0,
                    options: Options | Mapping[str, Any] | None = None,
                    device: str | None = None) -> list[tuple[GatedMLP, dict]]:
    """One MLP per width, each with what building it measured (GD: its final loss and epochs run).

    GD trains the widths together as one batched model. A construction first rejects a fact set no
    MLP can store (``check_factset``). ``device``: where a method that can use a GPU runs (GD, the
    encoder–decoder's solve); None keeps the options' own.
    """
    m = method(name)
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ParamError('width', f"got {width!r}; allowed: a positive integer")
    typed = options_of(name, options, device=device)
    widths = [int(w) for w in widths]
    if name in CONSTRUCTIONS:
        check_factset(factset)
    if m.build_many is not None:
        return m.build_many(factset, widths, seed=seed, options=typed)
    return [(m.build(factset, w, seed=seed, options=typed), {}) for w in widths]


def build_fact_mlp(name: str, factset: FactSet, width: int, *, seed: int = 0,
                   options: Options | Mapping[str, Any] | None = None, device: str | None = None) -> GatedMLP:
    """The fact MLP of method ``name`` (GD or a construction) at hidden width ``width``."""
    return build_fact_mlps(name, factset, [width], seed=seed, options=options, device=device)[0][0]
