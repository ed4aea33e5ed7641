"""Searches inside a cell: what to probe next, decided only by what the cell has recorded.

Being pure functions of the recorded outcomes, a killed sweep resumes from its last recorded probe
with nothing redone, and a round may propose several values at once (a batched GD trainer then
evaluates them together). Two searches serve every experiment:

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
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist


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
class SmallestSuccess:
    """The smallest value in [low, high] that succeeds (bisection for arity 1, k-ary otherwise)."""

    param: str  # the probe key it searches, e.g. "width"

    def step(self, observations: Mapping[int, bool], low: int, high: int, arity: int = 1, *, verify: bool = False,
             predicted: Prediction | None = None, scores: Mapping[int, float] | None = None) -> Step:
        """The bracket is (largest failure below the smallest success, smallest success]. Values are
        spread geometrically over a wide bracket and evenly over a narrow one; the top of the range is
        probed only once the bracket below it is narrow (a value far above the answer is never tried).
        Non-monotone observations are flagged and the search still brackets the smallest success.

        ``predicted`` (e.g. from the cells already finished): the first round probes the arity
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
        if predicted is not None and 0 < predicted.value < math.inf:
            picks = _predicted(inside, low, high, arity, predicted, best, below)
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


def _predicted(inside: dict[int, bool], low: int, high: int, arity: int, predicted: Prediction, best,
               below) -> set[int]:
    """The next values of a search opened around a prediction (see ``SmallestSuccess.step``)."""
    if not inside:  # the first round: the quantiles that split the belief into arity + 1 equal parts
        return {round(min(high, max(low, predicted.quantile(i / (arity + 1))))) for i in range(1, arity + 1)}
    start = max(below) + 1 if below else low
    top = high if best is None else best  # the answer is one of start…top (or none, if top is high and fails)
    if predicted.probability_below(top + 0.5) - predicted.probability_below(start - 0.5) >= TRUSTED_MASS:
        return {_median_split(start, top, predicted)}
    if best is None:  # the belief missed low: double above the highest failure
        return {min(high, math.ceil((start - 1) * 2 ** (i / arity))) for i in range(1, arity + 1)}
    if not below:  # the belief missed high: halve below the smallest success
        return {max(low, math.floor(best / 2 ** (i / arity))) for i in range(1, arity + 1)}
    return _spread(start, best, arity)


def _median_split(start: int, top: int, predicted: Prediction) -> int:
    """The value v in [start, top) that best halves the belief about the answer (one of start…top)
    into m ≤ v and m > v: one probe at the belief's median costs fewer probes than arity evenly
    spaced values, and the runner keeps the cores busy with other cells meanwhile."""
    if top == start:
        return top
    half = (predicted.probability_below(start - 0.5) + predicted.probability_below(top + 0.5)) / 2
    median = predicted.quantile(half) - 0.5  # m ≤ v holds half the belief when v + 0.5 is its median
    near = {min(top - 1, max(start, f(median))) for f in (math.floor, math.ceil)}
    return min(near, key=lambda v: (abs(predicted.probability_below(v + 0.5) - half), v))


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
class LargestSuccess:
    """The largest multiple of ``step`` in [low, high] that succeeds, assuming success falls with the value."""

    param: str  # the probe key it searches, e.g. "num_facts"

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
