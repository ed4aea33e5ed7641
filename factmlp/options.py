"""Typed options, declared once beside the function that uses them.

A method (GD or a construction) or a fact-set geometry declares its options as a frozen dataclass
derived from ``Options`` whose fields are made with ``option()``: the annotation is the type, and
the field carries the default, the allowed values or bounds and a line of documentation. Values are
checked when the object is made, so a notebook gets the same one-line errors a sweep file does, and
sweep parameters are generated from the same declarations (``factmlp.experiments.sweep_params``):
adding an option touches only the file that declares and uses it.

Plain fields (made without ``option()``) are programmatic knobs, never sweep parameters.
A method's option ``x`` is the sweep parameter ``<method>_x``; options every cell carries keep
their own names, after their class's ``prefix`` (a geometry's ``beta``, an edit method's ``ft_lr``).

A bad value raises ``ParamError`` (key and what is allowed): the contract's own error
(``orchestrator.experiment``), so a value that is bad in a notebook and in a sweep file is one error.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from orchestrator.experiment import ParamError

REQUIRED = object()
_OPTION = "factmlp.option"


@dataclass(frozen=True)
class Option:
    """A typed value: its type, default (or ``REQUIRED``), allowed values or bounds, and what it means."""

    kind: type
    default: Any = REQUIRED
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is not None or self.high is not None:
            left = "(" if self.low_open else "["
            return f"{self.kind.__name__} in {left}{self.low if self.low is not None else '-inf'}, " \
                   f"{self.high if self.high is not None else 'inf'}]"
        return f"a {self.kind.__name__}"

    def coerce(self, key: str, value: Any) -> Any:
        """Return ``value`` as this option's type, or raise ValueError naming key and what is allowed.

        An integer is accepted for a float; nothing else is converted.
        """
        bad = ParamError(key, f"got {value!r}; allowed: {self.allowed()}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad
            value = float(value)
        elif not isinstance(value, self.kind):
            raise bad
        if self.choices is not None and value not in self.choices:
            raise bad
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and value > self.high:
            raise bad
        return value


def option(default: Any, doc: str = "", *, choices: tuple | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False) -> Any:
    """A dataclass field that is a declared option (its type is the field's annotation)."""
    return dataclasses.field(default=default, metadata={_OPTION: dict(choices=choices, low=low, high=high,
                                                                     low_open=low_open, doc=doc)})


@functools.cache
def declared(cls: type) -> dict[str, Option]:
    """The declared options of an options class, in field order (plain fields are left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: Option(hints[f.name], f.default, **f.metadata[_OPTION])
            for f in dataclasses.fields(cls) if _OPTION in f.metadata}


def parameter_names(cls: type) -> dict[str, str]:
    """Each declared option's sweep-parameter name when every cell carries it: the ``prefix`` of the
    class that declares the field, then the field's name (a subclass that extends another's options
    keeps their names: batch_rank_one's ``rome_ridge`` beside its own ``batch_rtol``)."""
    def owner(name: str) -> type:
        return next(c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {}))
    return {name: owner(name).prefix + name for name in declared(cls)}


@dataclass(frozen=True)
class Param(Option):
    """An option as a cell parameter (``orchestrator.experiment.Param``).

    ``methods``: the methods whose cells carry it (an option of those methods); None: every cell.
    ``read_when``: (another parameter, its values) of the cells that read it, for a parameter every
    cell carries (it is part of the id) but only some use: a geometry's option is read when
    ``geometry`` is one that declares it, so a view may leave it out of the others.
    """

    methods: tuple[str, ...] | None = None
    read_when: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Options:
    """Base of every typed options class: declared values are checked (and ints made floats) on creation.

    ``prefix``: see ``parameter_names``.
    """

    prefix: ClassVar[str] = ""

    def __post_init__(self):
        for name, spec in declared(type(self)).items():
            object.__setattr__(self, name, spec.coerce(name, getattr(self, name)))

    @classmethod
    def of(cls, values: Options | Mapping[str, Any] | None = None):
        """These options from an instance, a mapping of field names (unknown names are an error) or None."""
        if isinstance(values, cls):
            return values
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ParamError(unknown[0], f"unknown option of {cls.__name__}; allowed: {', '.join(sorted(names))}")
        return cls(**values)

    @classmethod
    def pick(cls, values: Mapping[str, Any]):
        """These options from the entries of ``values`` that are fields here; the rest are not ours."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class Whitened:
    """What 'the whitened variant' of a method is: another method, or the same one with options set."""

    method: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A way to make a fact MLP: ``build(factset, width, *, seed, options)`` and its typed options.

    ``build_many(factset, widths, *, seed, options)`` makes several widths at once and returns
    (model, measurements) pairs (GD trains them as one batched model); by default one by one.
    ``whitened``: the method's whitened variant, where it has one.
    """

    name: str
    build: Callable[..., Any]
    options: type[Options] = Options
    whitened: Whitened | None = None
    build_many: Callable[..., list] | None = None


@dataclass(frozen=True)
class EditMethod:
    """A way to edit facts in a trained model: ``edit(bench, edited, mapping, options)`` returns the new
    fact MLP (or the MLP and the steps it took), ``options`` its typed options (see ``parameter_names``)."""

    name: str
    edit: Callable[..., Any]
    options: type[Options] = Options
