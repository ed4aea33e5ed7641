"""The contract between an experiment kind and the generic sweep machinery.

An experiment declares its cell parameters (typed values, see ``Param``), its search (what a cell
probes, see ``orchestrator.search``) and pure functions: which probes a cell needs next given its
results so far, how to run a batch of probes, how to summarise a finished cell (``Experiment``).
What its reports show (columns, fits, figures, findings) is a separate ``Reporting`` it carries, which
changes nothing a cell runs. Kinds are registered by name through the
``factsweep.experiments`` entry-point group (``orchestrator.registry``); the orchestrator knows
them only through this module, and bad values cross it as a ``ParamError`` (key, message): the one
error for a bad value, which factmlp's typed options (``factmlp.options``) raise too.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.search import Prediction, Search


class ParamError(ValueError):
    """A bad value of a named parameter or option: its ``key`` and a ``message`` naming what is
    allowed, printed as 'key: message' (a sweep file's error names the same key)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


# An execution setting the driver hands to ``run_probes`` inside the cell's config (never part of its
# id): ``search.early_stop`` of the sweep file, whether a probe may stop once its outcome is decided.
EARLY_STOP = "early_stop"


def is_set(value) -> bool:
    """False for a value a row does not have: missing or None, or NaN read back from a table (a
    method's own option in another method's cell, a result of a cell that stored nothing)."""
    return value is not None and value == value


def as_param_error(err: ValueError, key: str | None = None) -> ParamError:
    """``err`` itself when it is a ParamError; any other ValueError (numpy's, a library's) blamed on
    ``key`` with its first line."""
    if isinstance(err, ParamError):
        return err
    return ParamError(key or "-", (str(err).splitlines() or [type(err).__name__])[0])


class Param(Protocol):
    """What the orchestrator needs of a cell parameter (``factmlp.options.Param`` is one).

    ``methods``: the methods whose cells carry it (an option of those methods); None: every cell.
    Optional ``read_when`` (another parameter, its values): the cells that read a parameter every cell
    carries; the MLflow view leaves it out of the others (``orchestrator.dashboard.shown_params``).
    """

    kind: type
    default: Any
    doc: str
    methods: tuple[str, ...] | None

    @property
    def required(self) -> bool: ...

    def allowed(self) -> str: ...

    def coerce(self, key: str, value: Any) -> Any: ...


class LawFit(Protocol):
    """A law fitted to rows: point ``estimates`` and 95% ``intervals`` per parameter symbol, how each
    interval was made (``interval_kind``), ``r2``, the indices of the ``rows`` it used and, in
    ``extra["x"]``, their x values."""

    estimates: Mapping[str, float]
    intervals: Mapping[str, tuple[float, float]]
    interval_kind: Mapping[str, str]
    r2: float
    rows: tuple[int, ...]
    extra: Mapping[str, Any]

    def curve(self, x) -> Any:
        """y at x as a figure that names the law draws it (the law says which axes: e.g. F at W)."""

    def band(self, x, level: float = 0.95) -> tuple[Any, Any]:
        """The pointwise ``level`` interval of ``curve(x)``."""

    def has_interval(self) -> bool:
        """Whether the fit saw enough distinct x for its intervals to be reported."""

    def problems(self) -> list[str]:
        """Why the fit says nothing about its law (empty: it does)."""


class Law(Protocol):
    """A law an experiment fits to its cells (``factmlp.scaling.SIZE`` is one): its ``name`` (the fits
    table's ``law``), ``formula`` in words, parameter symbols in report order, the fits table's
    column of each symbol (``columns``) and the names of the kinds of interval its fits report."""

    name: str
    formula: str
    parameters: tuple[str, ...]
    columns: Mapping[str, str]
    intervals: tuple[str, ...]

    def fit(self, x, y, *, strata=None, replicates=None, n_boot: int = 1000) -> LawFit:
        """Fit y against x; ``strata`` (one label per row) bound the bootstrap's resampling,
        ``replicates`` (the seed of each row) add an interval over per-seed fits. ValueError when
        the rows are too few."""


@dataclass(frozen=True)
class FitSpec:
    """A ``Law`` fitted to finished cells: y against x.

    ``over``: the cell parameters that move x along the law (num_facts for a size law; the spike β
    or condition κ for the ρ law). Cells are grouped by every other parameter that varies in the
    sweep (seed excepted: replicates are pooled and resampled within each value of ``over``), and a
    group is fitted only when one of ``over`` takes at least two values in it.
    """

    law: Law
    x: str
    y: str
    over: tuple[str, ...]


@dataclass(frozen=True)
class FigureSpec:
    """One report figure: y against x (``1/x`` when ``invert_x``), a colour per ``series`` value, a
    marker per ``marker`` value, one panel per ``facet`` value, and the fitted ``law`` per group when
    given. Cells with no x (nothing stored) are drawn at ``missing_x`` (e.g. the largest size tried).

    ``kind``: "points" (a median over seeds per setting), "curves" (y along x per cell, e.g. a
    search's probes: the median over seeds with a band) or "intervals" (x categorical: the median and
    95% interval over seeds per series, side by side). ``group``: the parameters told apart within a
    panel (labelled beside the marks; in "curves" one panel per series, coloured by group value);
    any other varying parameter the figure does not show joins them. ``needs``: the figure is drawn
    only when the sweep varies one of these. ``reference``: a horizontal reference line (0.99).
    ``top``: the largest value y can take (1 for a fraction); with ``ceiling``, values all within 5%
    of it are drawn as ``top − y`` on a log axis, so differences at the ceiling show.
    Every new field has a default: a declaration written for an older FigureSpec still draws.
    """

    name: str
    x: str
    y: str
    series: str
    marker: str | None = None
    law: str | None = None
    table: str = "cells"
    invert_x: bool = False
    title: str = ""
    facet: str | tuple[str, ...] | None = None  # several: the first that varies in the sweep
    missing_x: str | None = None
    needs: tuple[str, ...] = ()  # drawn only when one of these parameters varies in the sweep
    log_x: bool = True
    log_y: bool = True
    kind: str = "points"
    group: str | tuple[str, ...] | None = None
    reference: float | None = None
    top: float | None = None
    ceiling: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"FigureSpec {self.name}: kind {self.kind!r}; allowed: {', '.join(KINDS)}")


KINDS = ("points", "curves", "intervals")


@dataclass(frozen=True)
class Reporting:
    """What an experiment's tables, runs view, figures and findings show of its finished cells; none of
    it changes what a cell runs or its id.

    ``summary_columns``: the table's columns in reading order, its parameters first (which of them are
    parameters and which results is derived in ``orchestrator.cell_columns``).
    """

    summary_columns: tuple[str, ...] = ()
    aggregates: tuple[str, ...] = ()  # results summarised over seeds (median, range, 95% interval)
    fractions: tuple[str, ...] = ()  # results bounded in [0, 1] (recall, scores): intervals on the logit scale
    view_metrics: tuple[str, ...] = ()  # results the MLflow runs table shows beside the summary columns
    trajectory: tuple[str, ...] = ()  # (probe parameter, result): one MLflow metric along the probes
    fits: tuple[FitSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    findings: Callable[[list[dict], list[dict]], str] | None = None
    cell_note: Callable[[dict], str] | None = None  # a short remark on a finished cell a reader must see
    labels: Mapping[str, str] = field(default_factory=dict)  # column -> words for axes and legends
    # The caption line of its figures, from the rows drawn: recipe and threshold in words (the seeds and
    # the settings a figure holds fixed are added by the figure itself).
    caption: Callable[[list[dict]], str] | None = None


@dataclass(frozen=True)
class Experiment:
    """An experiment kind (see the module docstring): what runs a cell; ``reporting``, what shows it.

    Which probes a cell needs next comes from exactly one of: ``search``, an
    ``orchestrator.search.Search`` the orchestrator drives on the cell's recorded rows (its ``param``
    is the probe key a sweep file's ``search.param`` names; it declares the ``search_*`` parameters
    it reads, which ``params`` includes), or, for a kind without a search, ``next_probes(cell,
    results)``. ``predict(cell, finished)``: the search's prediction for a cell from the rows of the
    cells already finished (an ``orchestrator.search.Prediction``, or None), where its search opens.
    """

    name: str
    params: Mapping[str, Param]
    run_probes: Callable[[dict, list[dict]], list[dict]]
    summarize: Callable[[dict, list[dict]], dict]
    check: Callable[[dict], None] = lambda cell: None
    search: Search | None = None
    next_probes: Callable[[dict, list[dict]], list[dict]] | None = None
    predict: Callable[[dict, list[dict]], Prediction | None] | None = None
    order: Callable[[dict], Any] | None = None  # the order cells start in (e.g. small F first)
    plan_warning: Callable[[dict], str] | None = None  # what `plan` tells before a cell runs ("" for nothing)
    method_of: Callable[[dict], str] | None = None  # whose options a cell carries (see Param.methods)
    # Parameters whose value names a file the cell reads: its bytes' sha256 is recorded on every row as
    # ``<param>_sha256`` and checked when the sweep resumes (a cell's id covers the path, not the bytes).
    input_files: tuple[str, ...] = ()
    reporting: Reporting = Reporting()

    def __post_init__(self):
        if (self.search is None) == (self.next_probes is None):
            raise TypeError(f"experiment {self.name}: declare exactly one of search and next_probes")

    def next_round(self, cell: dict, results: list[dict], prediction: Prediction | None = None) -> list[dict]:
        """The probes a cell needs next, a pure function of its recorded rows: the declared search driven
        through the ``Search`` protocol (observe the rows, propose unless done), or, for a kind without a
        search, its own ``next_probes``. Plain Python: a notebook or a GPU script drives a cell with it."""
        if self.search is None:
            return self.next_probes(cell, results)
        state = self.search.observe(cell, results, prediction)
        return [] if self.search.done(state) else self.search.propose(state)

    def resolve(self, cell: Mapping[str, Any]) -> dict:
        """Fill defaults, coerce types and check values; raise ParamError on bad input (KeyError for
        an unknown key).

        Every given value is checked, but a parameter of other methods than the cell's (``method_of``)
        does not apply to the cell and is left out of it, so it never enters the cell's id.
        """
        unknown = sorted(set(cell) - set(self.params))
        if unknown:
            raise KeyError(unknown[0])
        try:
            given = {key: self.params[key].coerce(key, value) for key, value in cell.items()}
        except ValueError as err:
            raise as_param_error(err) from None
        out = {key: self._value(key, given) for key, param in self.params.items() if param.methods is None}
        method = self.method_of(out) if self.method_of else None
        out = {key: out[key] if param.methods is None else self._value(key, given)
               for key, param in self.params.items() if param.methods is None or method in param.methods}
        if "search_low" in out and "search_high" in out and out["search_low"] > out["search_high"]:
            raise ParamError("search_high", f"got {out['search_high']} below search_low {out['search_low']}; "
                                            "allowed: search_low <= search_high")
        try:
            self.check(out)
        except ValueError as err:
            raise as_param_error(err) from None
        return out

    def _value(self, key: str, given: dict) -> Any:
        param = self.params[key]
        if key in given:
            return given[key]
        if param.required:
            raise ParamError(key, f"required but not set; allowed: {param.allowed()}")
        return param.default

    def namespaces(self) -> tuple[str, ...]:
        """The methods that have parameters of their own: a sweep file may nest their options under them."""
        return tuple(dict.fromkeys(m for p in self.params.values() for m in p.methods or ()))


def parameter_table(experiment: Experiment) -> str:
    """The markdown table of an experiment's parameters that docs/sweep-spec.md shows (kept in sync by a test)."""
    rows = [f"### `{experiment.name}`", "", "| parameter | type | default | allowed | doc |", "|---|---|---|---|---|"]
    for name, p in experiment.params.items():
        default = "required" if p.required else f"`{p.default!r}`"
        doc = f"{'/'.join(p.methods)} only: {p.doc}" if p.methods else p.doc
        rows.append(f"| `{name}` | {p.kind.__name__} | {default} | {p.allowed()} | {doc} |".replace("\n", " "))
    return "\n".join(rows)
