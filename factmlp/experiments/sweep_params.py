"""Sweep parameters generated from the typed options declared beside each method and geometry.

A method's option ``x`` becomes the parameter ``<method>_x`` (``gd_epochs``, ``encoder_decoder_code_dim``)
that only cells of that method carry, so a new option reaches every experiment with nothing to
wire; a geometry's options keep their own names (``beta``, ``llm_model``) and every cell carries them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from factmlp.geometries import GEOMETRIES
from factmlp.methods import METHODS
from factmlp.options import Param, declared

__all__ = ["GEOMETRY_PARAMS", "Param", "geometry_options", "method_options", "method_params", "params_of"]


def params_of(options: type, *, prefix: str = "", methods: tuple[str, ...] | None = None,
              geometries: tuple[str, ...] | None = None) -> dict[str, Param]:
    return {prefix + name: Param(o.kind, o.default, o.choices, o.low, o.high, o.low_open, o.doc, methods=methods,
                                 geometries=geometries)
            for name, o in declared(options).items()}


def method_params(names: Iterable[str], *, defaults: Mapping[str, Any] | None = None,
                  exclude: Iterable[str] = ()) -> dict[str, Param]:
    """The options of methods ``names`` as parameters; ``defaults`` overrides some defaults for one
    experiment, ``exclude`` leaves parameters out (the experiment sets those itself)."""
    out = {}
    for name in names:
        out.update(params_of(METHODS[name].options, prefix=f"{name}_", methods=(name,)))
    for key in exclude:
        out.pop(key)
    for key, value in (defaults or {}).items():
        out[key] = dataclasses.replace(out[key], default=out[key].coerce(key, value))
    return out


def method_options(cell: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The options of method ``name`` that the cell sets, by option name (the others keep their defaults)."""
    prefix = f"{name}_"
    return {option: cell[prefix + option] for option in declared(METHODS[name].options) if prefix + option in cell}


def _geometry_params() -> dict[str, Param]:
    """Every geometry's options, each naming the geometries that declare it."""
    out = {}
    for geometry in GEOMETRIES.values():
        for key, param in params_of(geometry.options).items():
            if out.setdefault(key, param) != param:
                raise TypeError(f"geometry option {key!r} is declared differently by two geometries")
    users = {key: tuple(n for n, g in GEOMETRIES.items() if key in declared(g.options)) for key in out}
    return {key: dataclasses.replace(param, geometries=users[key]) for key, param in out.items()}


# Every geometry's options, each once (an option two geometries share is declared alike in both).
GEOMETRY_PARAMS = _geometry_params()


def geometry_options(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's geometry options, by name."""
    return {key: cell[key] for key in GEOMETRY_PARAMS if key in cell}
