"""The contract between an experiment kind and the generic sweep machinery.

An experiment declares its parameters (with defaults, types and allowed values) and three pure
functions: which probes a cell needs next given the results so far, how to run a batch of probes,
and how to summarise a finished cell. The orchestrator knows experiments only through this.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from factmlp.options import REQUIRED, Option

@dataclass(frozen=True)
class Param(Option):
    """One cell parameter: a typed value (its type, default, allowed values or bounds, doc).

    ``methods``: the methods whose cells carry it (an option of those methods); None: every cell.
    """

    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FitSpec:
    """A law of ``factmlp.scaling`` fitted to finished cells: y against x.

    ``over``: the cell parameters that move x along the law (num_facts for a size law; the spike β
    or condition κ for the ρ law). Cells are grouped by every other parameter that varies in the
    sweep (seed excepted: replicates are pooled and resampled within each value of ``over``), and a
    group is fitted only when one of ``over`` takes at least two values in it.
    """

    law: str
    x: str
    y: str
    over: tuple[str, ...]


@dataclass(frozen=True)
class FigureSpec:
    """One report figure: y against x (``1/x`` when ``invert_x``), a colour per ``series`` value, a
    marker per ``marker`` value, one panel per ``facet`` value, and the fitted ``law`` per group when
    given. Cells with no x (nothing stored) are drawn at ``missing_x`` (e.g. the largest size tried)."""

    name: str
    x: str
    y: str
    series: str
    marker: str | None = None
    law: str | None = None
    table: str = "cells"
    invert_x: bool = False
    title: str = ""
    facet: str | None = None
    missing_x: str | None = None
    needs: tuple[str, ...] = ()  # drawn only when one of these parameters varies in the sweep
    log_x: bool = True
    log_y: bool = True


@dataclass(frozen=True)
class Experiment:
    """An experiment kind as the registry exposes it (see module docstring)."""

    name: str
    params: Mapping[str, Param]
    next_probes: Callable[[dict, list[dict]], list[dict]]
    run_probes: Callable[[dict, list[dict]], list[dict]]
    summarize: Callable[[dict, list[dict]], dict]
    check: Callable[[dict], None] = lambda cell: None
    summary_columns: tuple[str, ...] = ()
    aggregates: tuple[str, ...] = ()  # results summarised over seeds (median, range, 95% interval)
    view_metrics: tuple[str, ...] = ()  # results the MLflow runs table shows beside the summary columns
    trajectory: tuple[str, ...] = ()
    fits: tuple[FitSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    findings: Callable[[list[dict], list[dict]], str] | None = None
    cell_note: Callable[[dict], str] | None = None  # a short remark on a finished cell a reader must see
    labels: Mapping[str, str] = field(default_factory=dict)  # column -> words for axes and legends
    method_of: Callable[[dict], str] | None = None  # whose options a cell carries (see Param.methods)

    def resolve(self, cell: Mapping[str, Any]) -> dict:
        """Fill defaults, coerce types and check values; raise ValueError('key: ...') on bad input.

        Every given value is checked, but a parameter of other methods than the cell's (``method_of``)
        does not apply to the cell and is left out of it, so it never enters the cell's id.
        """
        unknown = sorted(set(cell) - set(self.params))
        if unknown:
            raise KeyError(unknown[0])
        given = {key: self.params[key].coerce(key, value) for key, value in cell.items()}
        out = {key: self._value(key, given) for key, param in self.params.items() if param.methods is None}
        method = self.method_of(out) if self.method_of else None
        out = {key: out[key] if param.methods is None else self._value(key, given)
               for key, param in self.params.items() if param.methods is None or method in param.methods}
        self.check(out)
        return out

    def _value(self, key: str, given: dict) -> Any:
        param = self.params[key]
        if key in given:
            return given[key]
        if param.default is REQUIRED:
            raise ValueError(f"{key}: required but not set; allowed: {param.allowed()}")
        return param.default

    def namespaces(self) -> tuple[str, ...]:
        """The methods that have parameters of their own: a sweep file may nest their options under them."""
        return tuple(dict.fromkeys(m for p in self.params.values() for m in p.methods or ()))


def parameter_table(experiment: Experiment) -> str:
    """The markdown table of an experiment's parameters that docs/sweep-spec.md shows (kept in sync by a test)."""
    rows = [f"### `{experiment.name}`", "", "| parameter | type | default | allowed | doc |", "|---|---|---|---|---|"]
    for name, p in experiment.params.items():
        default = "required" if p.default is REQUIRED else f"`{p.default!r}`"
        doc = f"{'/'.join(p.methods)} only: {p.doc}" if p.methods else p.doc
        rows.append(f"| `{name}` | {p.kind.__name__} | {default} | {p.allowed()} | {doc} |".replace("\n", " "))
    return "\n".join(rows)
