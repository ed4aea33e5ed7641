"""Searches inside a cell: what to probe next, decided only by what the cell has recorded.

An experiment declares its search (``Experiment.search``) and the orchestrator drives it through
the ``Search`` protocol (``Experiment.next_round``, from ``orchestrator.plan.advance``): ``observe``
the cell's recorded probe rows (and its prediction, if any), ``propose`` the next probes, ``done``
when none is left. The state is
a pure function of the recorded rows, so a killed sweep resumes from its last recorded probe with
nothing redone, and a round may propose several values at once (a batched GD trainer then
evaluates them together). A search declares its own cell parameters (``search_low``,
``search_high``, ``search_arity``, ``search_verify``; the experiment gives their defaults and docs)
and the experiment supplies only what is its own: whether a recorded row succeeded and its score.
Two searches serve every experiment, and ``Independent`` runs one per value of a probe key:

- ``SmallestSuccess``: the smallest value in [low, high] that succeeds (the minimum hidden width
  that stores F facts), with a verification round above the answer and, when a prediction is
  given, a first round on the quantiles of its belief and bisection at the belief's median;
- ``LargestSuccess``: the largest multiple of a step in [low, high] that succeeds (the most facts
  a fixed-width MLP stores), with the mirrored verification round below the answer and two values
  just above the failure that closed its bracket.

``SmallestSuccess`` given each probe's score (accuracy) also stops at a plateau: when nothing has
succeeded and the best score has not moved over the last factor ``PLATEAU_FACTOR`` of values, a
wider value will not succeed either (a model class with a capacity ceiling, e.g. the bilinear gate
past d(d+1)/2 hidden units), so the search stops there instead of walking to ``high``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.experiment import Param

# The cell parameters a search reads: its range, values per round and verification round.
LOW, HIGH, ARITY, VERIFY = "search_low", "search_high", "search_arity", "search_verify"
# The probe-row column holding a prediction's spread (its value: ``predicted_<param>``).
SPREAD_COLUMN = "prediction_spread"


# Below this belief in the remaining bracket the prediction has missed, and the search stops using it.
TRUSTED_MASS = 0.05

# The plateau rule: nothing succeeded, at least PLATEAU_PROBES values probed, and the best score over
# every value probed is within PLATEAU_TOLERANCE of the best score at values ≤ (largest value probed) /
# PLATEAU_FACTOR. Replayed on the committed reference probes it cuts no cell that stores
# (tests/test_model_class_ceiling.py).
PLATEAU_FACTOR = 4
PLATEAU_TOLERANCE = 0.01
PLATEAU_PROBES = 4


def is_plateau(scores: Mapping[int, float], observations: Mapping[int, bool]) -> bool:
    """Whether a search that has found no success has stopped improving as the value grows."""
    if any(observations.values()) or len(scores) < PLATEAU_PROBES:
        return False
    top = max(scores)
    early = [s for v, s in scores.items() if v * PLATEAU_FACTOR <= top]
    return bool(early) and max(scores.values()) - max(early) < PLATEAU_TOLERANCE


@dataclass(frozen=True)
class Prediction:
    """Where a search expects its answer: a log-normal belief with median ``value`` whose log has
    standard deviation ln(1 + ``spread``) (``spread`` 0.25: one standard deviation is a factor 1.25)."""

    value: float
    spread: float = 0.25

    def _sigma(self) -> float:
        if not self.spread > 0:  # zero, negative or NaN: a belief sure of its value
            return 1e-9
        return min(math.log1p(self.spread), 50.0)

    def quantile(self, q: float) -> float:
        """The value below which the belief puts probability q (0 < q < 1)."""
        return self.value * math.exp(self._sigma() * NormalDist().inv_cdf(q))

    def probability_below(self, v: float) -> float:
        """The belief's probability that the answer is below v."""
        return 0.0 if v <= 0 else NormalDist().cdf(math.log(v / self.value) / self._sigma())


def prediction_columns(param: str, prediction: Prediction | None) -> dict:
    """What a probe row records of its cell's prediction (``predicted_<param>``, ``prediction_spread``),
    so a resumed cell opens the same search again."""
    if prediction is None:
        return {}
    return {f"predicted_{param}": prediction.value, SPREAD_COLUMN: prediction.spread}


def recorded_prediction(param: str, rows: Sequence[Mapping]) -> Prediction | None:
    """The prediction a cell's recorded rows carry (``prediction_columns``), None if they carry none."""
    first = next((r for r in rows if f"predicted_{param}" in r), None)
    if first is None:
        return None
    return Prediction(float(first[f"predicted_{param}"]), float(first.get(SPREAD_COLUMN, Prediction.spread)))


@dataclass(frozen=True)
class Step:
    """``next`` empty means done. ``answer`` None when nothing in range succeeded. ``stable`` (with
    verification): the smallest probed value from which every probed value succeeds (SmallestSuccess),
    the largest up to which every probed value succeeds (LargestSuccess). ``plateau``: the search
    stopped early with nothing succeeded, its best score flat over the values probed (``is_plateau``)."""

    next: tuple[int, ...]
    answer: int | None
    monotone: bool
    stable: int | None = None
    plateau: bool = False  # stopped with no success because the score stopped growing with the value

    @property
    def done(self) -> bool:
        return not self.next


class Search(Protocol):
    """What the orchestrator drives inside a cell: ``observe`` the cell's recorded probe rows (a pure
    function of them, so a resumed cell is where it stopped), ``propose`` the probes to run next,
    ``done`` when there are none. ``param``: the probe key searched (a sweep file's ``search.param``;
    a prediction is recorded as ``predicted_<param>``). ``params``: the cell parameters it reads."""

    param: str

    @property
    def params(self) -> dict[str, Param]: ...

    def observe(self, cell: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                prediction: Prediction | None = None) -> Any:
        """The state after ``rows`` (``prediction``: where the cell's search opens, or None)."""

    def propose(self, state: Any) -> list[dict]:
        """The probes to run next; empty once ``done``."""

    def done(self, state: Any) -> bool: ...


def _succeeded(cell: Mapping, row: Mapping) -> bool:
    """A probe row's own verdict (its ``success`` column): the default outcome of a search."""
    return bool(row["success"])


@dataclass(frozen=True)
class _OneValue:
    """The ``Search`` protocol over one integer probe key ``param``, shared by SmallestSuccess and
    LargestSuccess (each adds its ``step`` on observed values and ``on``, the step with a cell's range).

    ``success(cell, row)``: whether a recorded probe succeeded (default: its ``success`` column);
    ``score(cell, row)``: how close it came (None: no score). ``low``, ``high``, ``arity``, ``verify``:
    the declarations of ``search_low`` … ``search_verify`` (the experiment gives defaults and docs); a
    search made without them (a benchmark calling ``step`` directly) declares none.
    """

    param: str
    low: Param | None = None
    high: Param | None = None
    arity: Param | None = None
    verify: Param | None = None
    success: Callable[[Mapping, Mapping], bool] = _succeeded
    score: Callable[[Mapping, Mapping], float] | None = None

    @property
    def params(self) -> dict[str, Param]:
        return {key: p for key, p in self._declared().items() if key is not None and p is not None}

    def _declared(self) -> dict:
        """Cell parameter -> its declaration, in the order the parameter tables list them."""
        return {LOW: self.low, HIGH: self.high, ARITY: self.arity, VERIFY: self.verify}

    def observe(self, cell: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                prediction: Prediction | None = None) -> Step:
        observations = {int(r[self.param]): bool(self.success(cell, r)) for r in rows}
        scores = None if self.score is None else {int(r[self.param]): float(self.score(cell, r)) for r in rows}
        return self.on(cell, observations, scores=scores, prediction=prediction)

    def propose(self, state: Step) -> list[dict]:
        return [{self.param: v} for v in state.next]

    def done(self, state: Step) -> bool:
        return state.done


def _as_int(value, what: str) -> int:
    """Probe values are integers; 12.0 read back from a table is 12, 12.5 is an error."""
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _checked(observations: Mapping, low, high, arity) -> tuple[dict[int, bool], int, int]:
    low, high = _as_int(low, "low"), _as_int(high, "high")
    if not 1 <= low <= high:
        raise ValueError(f"search range must satisfy 1 <= low <= high, got low={low}, high={high}")
    if isinstance(arity, bool) or int(arity) != arity or arity < 1:
        raise ValueError(f"arity must be >= 1, got {arity}")
    return {_as_int(v, "observed value"): bool(ok) for v, ok in observations.items()}, low, high


def is_monotone(observations: Mapping[int, bool]) -> bool:
    """Success should never be observed below a failure; report it when it is."""
    successes = [w for w, ok in observations.items() if ok]
    failures = [w for w, ok in observations.items() if not ok]
    return not successes or not failures or max(failures) < min(successes)


def verification_values(value: int) -> set[int]:
    """The values just above a found minimum that must succeed too: m+1, m+2, ⌈1.05·m⌉, ⌈1.1·m⌉."""
    return {value + 1, value + 2, math.ceil(1.05 * value), math.ceil(1.1 * value)}


def verification_below(value: int) -> set[int]:
    """The mirror for a found maximum, the values just below it that must succeed too: n−1, n−2,
    ⌊0.95·n⌋, ⌊0.9·n⌋."""
    return {value - 1, value - 2, math.floor(0.95 * value), math.floor(0.9 * value)}


def _spread(start: int, stop: int, n: int) -> set[int]:
    """n values inside [start, stop): geometric while the bracket spans more than a factor 2, so a
    wide range costs O(log log) cheap rounds instead of probing huge values; then evenly spaced."""
    if stop > 2 * start:
        return {round(start * (stop / start) ** (i / (n + 1))) for i in range(1, n + 1)}
    return {start + (stop - start) * i // (n + 1) for i in range(1, n + 1)}


@dataclass(frozen=True)
class SmallestSuccess(_OneValue):
    """The smallest value in [low, high] that succeeds (bisection for arity 1, k-ary otherwise), e.g.
    of the probe key "width"."""

    def on(self, cell: Mapping[str, Any], observations: Mapping[int, bool], *,
           scores: Mapping[int, float] | None = None, prediction: Prediction | None = None) -> Step:
        """``step`` with the cell's search parameters."""
        return self.step(observations, cell[LOW], cell[HIGH], cell[ARITY], verify=cell[VERIFY],
                         prediction=prediction, scores=scores)

    def step(self, observations: Mapping[int, bool], low: int, high: int, arity: int = 1, *, verify: bool = False,
             prediction: Prediction | None = None, scores: Mapping[int, float] | None = None) -> Step:
        """The bracket is (largest failure below the smallest success, smallest success]. Values are
        spread geometrically over a wide bracket and evenly over a narrow one; the top of the range is
        probed only once the bracket below it is narrow (a value far above the answer is never tried).
        Non-monotone observations are flagged and the search still brackets the smallest success.

        ``prediction`` (e.g. from the cells already finished): the first round probes the arity
        values that split the prediction's belief into equal parts (its median for arity 1, its
        quartiles for arity 3); afterwards, while the belief puts at least ``TRUSTED_MASS`` on the
        values the answer can still take, one value per round at the belief's median among them
        (fewer probes than arity evenly spaced values; other cells keep the cores busy), and once
        it does not, the plain search's doubling, halving or even spread. The answer is the same
        smallest success with a failure just below it, so a bad prediction costs probes, never
        correctness.

        ``scores`` (each probed value's score, e.g. accuracy): with nothing succeeded and the best
        score flat as the value grows (``is_plateau``), the search stops: answer None, ``plateau``.

        ``verify``: once the answer m is found, ``verification_values(m)`` are probed too (the round
        that settles m fills its spare slots with the likeliest of them), and if one
        fails, the same above the highest failure, until some value w and its verification values all
        succeed (``stable`` = w), never above 2·m or ``high``. The answer itself never changes.
        """
        observations, low, high = _checked(observations, low, high, arity)
        inside = {v: ok for v, ok in observations.items() if low <= v <= high}
        monotone = is_monotone(observations)
        successes = [v for v, ok in inside.items() if ok]
        best = min(successes) if successes else None
        top = best if best is not None else high + 1
        below = [v for v, ok in inside.items() if not ok and v < top]
        start = max(below) + 1 if below else low
        if best is None and high in inside:
            return Step((), None, monotone)
        if best is None and scores is not None and is_plateau(
                {_as_int(v, "scored value"): float(x) for v, x in scores.items() if low <= v <= high}, inside):
            return Step((), None, monotone, plateau=True)
        if start >= top:
            if not verify:
                return Step((), best, monotone, _stable(observations))
            want, stable = _verify(observations, min(high, 2 * best))
            return Step(tuple(sorted(want)), best, monotone, stable)
        if prediction is not None and 0 < prediction.value < math.inf:
            picks = _around_prediction(inside, low, high, arity, prediction, best, below)
        elif best is not None:
            picks = _spread(start, top, arity)
        elif high > 2 * start:  # nothing succeeded yet: gallop over the lower half of the log range
            reach = math.sqrt(high / start)
            picks = {round(start * reach ** (i / arity)) for i in range(1, arity + 1)}
        else:  # nothing succeeded yet and the rest of the range is narrow: the round includes the top
            picks = {high} | {start + (high - start) * i // arity for i in range(1, arity)}
        picks = {v for v in picks if v not in observations and start <= v <= min(top - 1, high)}
        if verify and best is not None and picks == set(range(start, top)):  # nothing in [start, top) is probed yet
            picks |= _early_verification(observations, start, best, high, arity - len(picks))
        return Step(tuple(sorted(picks)), best, monotone)


def _around_prediction(inside: dict[int, bool], low: int, high: int, arity: int, prediction: Prediction, best,
               below) -> set[int]:
    """The next values of a search opened around a prediction (see ``SmallestSuccess.step``)."""
    if not inside:  # the first round: the quantiles that split the belief into arity + 1 equal parts
        return {round(min(high, max(low, prediction.quantile(i / (arity + 1))))) for i in range(1, arity + 1)}
    start = max(below) + 1 if below else low
    top = high if best is None else best  # the answer is one of start…top (or none, if top is high and fails)
    if prediction.probability_below(top + 0.5) - prediction.probability_below(start - 0.5) >= TRUSTED_MASS:
        return {_median_split(start, top, prediction)}
    if best is None:  # the belief missed low: double above the highest failure
        return {min(high, math.ceil((start - 1) * 2 ** (i / arity))) for i in range(1, arity + 1)}
    if not below:  # the belief missed high: halve below the smallest success
        return {max(low, math.floor(best / 2 ** (i / arity))) for i in range(1, arity + 1)}
    return _spread(start, best, arity)


def _median_split(start: int, top: int, prediction: Prediction) -> int:
    """The value v in [start, top) that best halves the belief about the answer (one of start…top)
    into m ≤ v and m > v: one probe at the belief's median costs fewer probes than arity evenly
    spaced values, and the runner keeps the cores busy with other cells meanwhile."""
    if top == start:
        return top
    half = (prediction.probability_below(start - 0.5) + prediction.probability_below(top + 0.5)) / 2
    median = prediction.quantile(half) - 0.5  # m ≤ v holds half the belief when v + 0.5 is its median
    near = {min(top - 1, max(start, f(median))) for f in (math.floor, math.ceil)}
    return min(near, key=lambda v: (abs(prediction.probability_below(v + 0.5) - half), v))


def _early_verification(observations: Mapping[int, bool], start: int, best: int, high: int, room: int) -> set[int]:
    """Up to ``room`` verification values probed in the round that settles the answer (it is then one
    of start…best), so a spare slot of that round saves the verification a round of its own: the
    values above ``best`` that the most candidate answers would verify, smallest first."""
    if room < 1:
        return set()
    needed: dict[int, int] = {}
    for answer in range(start, best + 1):
        for v in verification_values(answer):
            if best < v <= min(high, 2 * answer) and v not in observations:
                needed[v] = needed.get(v, 0) + 1
    return set(sorted(needed, key=lambda v: (-needed[v], v))[:room])


def _stable(observations: Mapping[int, bool]) -> int | None:
    """The smallest probed value from which every probed value succeeds (None if the largest failed)."""
    top_failure = max((v for v, ok in observations.items() if not ok), default=-math.inf)
    return min((v for v, ok in observations.items() if ok and v > top_failure), default=None)


def _verify(observations: dict[int, bool], ceiling: int, values=verification_values) -> tuple[set[int], int | None]:
    """(values still to probe, stable value) once the plain search found its answer.

    Success can flicker near the boundary (a construction's random draw, GD that fails at one width
    and stores at a smaller one), so values just above the answer are probed too; past ``ceiling``
    (2·answer) the stable value is reported as unknown. LargestSuccess runs this same walk on
    negated values (``values`` then gives the negated ``verification_below``).
    """
    stable = _stable(observations)
    if stable is None:  # the largest value probed failed: verify above it
        top_failure = max(v for v, ok in observations.items() if not ok)
        return {v for v in values(top_failure) if v <= ceiling} - set(observations), None
    want = {v for v in values(stable) if v <= ceiling} - set(observations)
    return want, (None if want or stable > ceiling else stable)


def _negated_below(value: int) -> set[int]:
    """``verification_below`` on negated values: below a maximum is above the negated minimum."""
    return {-v for v in verification_below(-value)}


@dataclass(frozen=True)
class LargestSuccess(_OneValue):
    """The largest multiple of ``step`` in [low, high] that succeeds, assuming success falls with the
    value, e.g. of the probe key "num_facts". ``grid_key``: the cell parameter holding the step
    (declared by ``grid``, between ``search_arity`` and ``search_verify``); None: step 1."""

    grid_key: str | None = None
    grid: Param | None = None

    def _declared(self) -> dict:
        return {LOW: self.low, HIGH: self.high, ARITY: self.arity, self.grid_key: self.grid, VERIFY: self.verify}

    def on(self, cell: Mapping[str, Any], observations: Mapping[int, bool], *,
           scores: Mapping[int, float] | None = None, prediction: Prediction | None = None) -> Step:
        """``step`` with the cell's search parameters. It opens no bracket around a prediction and
        has no plateau rule, so it takes neither."""
        if prediction is not None or scores is not None:
            raise ValueError(f"LargestSuccess({self.param!r}) takes no prediction and no scores")
        return self.step(observations, cell[LOW], cell[HIGH], cell[ARITY],
                         step=cell[self.grid_key] if self.grid_key else 1, verify=cell[VERIFY])

    def step(self, observations: Mapping[int, bool], low: int, high: int, arity: int = 1, *,
             step: int = 1, verify: bool = False) -> Step:
        """A k-ary bisection on indices n (value = n·step ≥ 2). The bracket is [largest success,
        smallest failure above it); while nothing succeeded the round probes the smallest value (if
        even that fails the answer is None) and arity − 1 values above it. Observations off the grid
        or out of range are ignored, so a resumed cell continues exactly.

        ``verify``: once the bracket closes on n (its failure f = n + 1, or f = the smallest value
        when nothing succeeded), one round probes f + 1 and f + 2 (a success there was hidden by a
        flicker at f: the answer moves up to it and the bisection resumes) and
        ``verification_below(n)``, walking below any of those that fails as SmallestSuccess walks
        above (``stable``: the largest value up to which every probe succeeds), never below n/2."""
        observations, low, high = _checked(observations, max(low, 1), max(high, 1), arity)
        lo = max(-(-low // step), -(-2 // step))
        hi = max(lo, high // step)
        seen = {v // step: ok for v, ok in observations.items() if v % step == 0 and lo <= v // step <= hi}
        monotone = not any(ok and any(not ok2 for n2, ok2 in seen.items() if n2 < n) for n, ok in seen.items())
        successes = [n for n, ok in seen.items() if ok]
        best = max(successes) if successes else None
        answer = None if best is None else best * step
        bottom = lo - 1 if best is None else best
        failures = [n for n, ok in seen.items() if not ok and n > bottom]
        end = min(failures) - 1 if failures else hi  # the largest index not known to fail
        if bottom >= end:
            if not verify:
                return Step((), answer, monotone)
            want = {n for n in (end + 2, end + 3) if n <= hi and n not in seen}
            stable = None
            if best is not None:  # the width search's walk on negated indices: below the answer is above there
                below, stable = _verify({-n: ok for n, ok in seen.items()}, -max(lo, -(-best // 2)), _negated_below)
                want |= {-n for n in below}
                stable = None if want or stable is None else -stable * step
            return Step(tuple(sorted(n * step for n in want)), answer, monotone, stable)
        span = end - bottom
        if best is None:
            picks = {lo} | {lo + (end - lo) * i // arity for i in range(1, arity)}
        else:
            picks = {bottom + -(-span * i // (arity + 1)) for i in range(1, arity + 1)}
        return Step(tuple(sorted(n * step for n in picks if n not in seen and bottom < n <= end)), answer, monotone)


@dataclass(frozen=True)
class Independent:
    """One search per value of the probe key ``key``, each observing only the rows of its value and
    proposing probes that carry it (transformer_capacity: F searched alone and inside the Transformer).
    Its state maps each value to its search's state; it is done when every search is."""

    key: str
    searches: Mapping[str, Search]

    def __post_init__(self):
        if len({s.param for s in self.searches.values()}) != 1:
            raise TypeError(f"Independent({self.key!r}): the searches search different probe keys")
        first = next(iter(self.searches.values())).params
        if any(s.params != first for s in self.searches.values()):
            raise TypeError(f"Independent({self.key!r}): the searches declare their parameters differently")

    @property
    def param(self) -> str:
        return next(iter(self.searches.values())).param

    @property
    def params(self) -> dict[str, Param]:
        return next(iter(self.searches.values())).params

    def observe(self, cell: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                prediction: Prediction | None = None) -> dict[str, Any]:
        return {value: search.observe(cell, [r for r in rows if r[self.key] == value], prediction)
                for value, search in self.searches.items()}

    def propose(self, state: Mapping[str, Any]) -> list[dict]:
        return [{self.key: value, **probe} for value, search in self.searches.items()
                for probe in search.propose(state[value])]

    def done(self, state: Mapping[str, Any]) -> bool:
        return all(search.done(state[value]) for value, search in self.searches.items())
