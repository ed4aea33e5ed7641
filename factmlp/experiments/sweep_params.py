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
from factmlp.options import Param, declared, parameter_names

__all__ = ["GEOMETRY_PARAMS", "Param", "geometry_options", "method_defaults", "method_options", "method_params",
           "params_of", "shared_options", "shared_params"]


def params_of(options: type, *, prefix: str | None = None, methods: tuple[str, ...] | None = None
              ) -> dict[str, Param]:
    """The declared options as parameters named ``prefix`` + name, or (no prefix) by ``parameter_names``."""
    names = parameter_names(options) if prefix is None else {name: prefix + name for name in declared(options)}
    return {names[name]: Param(o.kind, o.default, o.choices, o.low, o.high, o.low_open, o.doc, methods=methods)
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


def method_defaults(name: str, options) -> dict[str, Any]:
    """Parameter defaults (``method_params(defaults=...)``) that make method ``name``'s options those of
    ``options`` (a typed options object, e.g. ``factmlp.train.LAPTOP_RECIPE``): the ones it changes."""
    return {f"{name}_{key}": getattr(options, key) for key, o in declared(type(options)).items()
            if getattr(options, key) != o.default}


def method_options(cell: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The options of method ``name`` that the cell sets, by option name (the others keep their defaults)."""
    prefix = f"{name}_"
    return {option: cell[prefix + option] for option in declared(METHODS[name].options) if prefix + option in cell}


def shared_params(options: Iterable[type]) -> dict[str, Param]:
    """The options of these classes as parameters every cell carries (``parameter_names``), each once:
    an option two classes share (a geometry's ``beta``, the rank-one edits' ``rome_ridge``) must be
    declared alike in both."""
    out = {}
    for cls in options:
        for key, param in params_of(cls).items():
            if out.setdefault(key, param) != param:
                raise TypeError(f"option {key!r} is declared differently by two options classes")
    return out


def shared_options(cell: Mapping[str, Any], options: type):
    """The typed options ``options`` with the values the cell sets (see ``shared_params``)."""
    return options(**{name: cell[key] for name, key in parameter_names(options).items() if key in cell})


def _geometry_params() -> dict[str, Param]:
    """Every geometry's options, each once, naming the geometries that declare it (a view may leave
    an option out of the other geometries' cells)."""
    out = shared_params(g.options for g in GEOMETRIES.values())
    users = {key: tuple(n for n, g in GEOMETRIES.items() if key in parameter_names(g.options).values()) for key in out}
    return {key: dataclasses.replace(param, read_when=("geometry", users[key])) for key, param in out.items()}


# Every geometry's options, each once (an option two geometries share is declared alike in both).
GEOMETRY_PARAMS = _geometry_params()


def geometry_options(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's geometry options, by name."""
    return {key: cell[key] for key in GEOMETRY_PARAMS if key in cell}
