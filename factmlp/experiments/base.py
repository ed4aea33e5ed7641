"""The contract between an experiment kind and the generic sweep machinery.

An experiment declares its parameters (with defaults, types and allowed values) and three pure
functions: which probes a cell needs next given the results so far, how to run a batch of probes,
and how to summarise a finished cell. The orchestrator knows experiments only through this.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One cell parameter: its type comes from ``kind``; ``choices`` or bounds restrict its values."""

    kind: type
    default: Any = REQUIRED
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    doc: str = ""

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is not None or self.high is not None:
            left = "(" if self.low_open else "["
            return f"{self.kind.__name__} in {left}{self.low if self.low is not None else '-inf'}, " \
                   f"{self.high if self.high is not None else 'inf'}]"
        return f"a {self.kind.__name__}"

    def coerce(self, key: str, value: Any) -> Any:
        """Return ``value`` as this parameter's type, or raise ValueError naming key and what is allowed."""
        bad = ValueError(f"{key}: got {value!r}; allowed: {self.allowed()}")
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

    def resolve(self, cell: Mapping[str, Any]) -> dict:
        """Fill defaults, coerce types and check values; raise ValueError('key: ...') on bad input."""
        unknown = sorted(set(cell) - set(self.params))
        if unknown:
            raise KeyError(unknown[0])
        out = {}
        for key, param in self.params.items():
            if key in cell:
                out[key] = param.coerce(key, cell[key])
            elif param.default is REQUIRED:
                raise ValueError(f"{key}: required but not set; allowed: {param.allowed()}")
            else:
                out[key] = param.default
        self.check(out)
        return out


def parameter_table(experiment: Experiment) -> str:
    """The markdown table of an experiment's parameters that docs/sweep-spec.md shows (kept in sync by a test)."""
    rows = [f"### `{experiment.name}`", "", "| parameter | type | default | allowed | doc |", "|---|---|---|---|---|"]
    for name, p in experiment.params.items():
        default = "required" if p.default is REQUIRED else f"`{p.default!r}`"
        rows.append(f"| `{name}` | {p.kind.__name__} | {default} | {p.allowed()} | {p.doc} |".replace("\n", " "))
    return "\n".join(rows)
