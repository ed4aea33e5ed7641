"""Searches inside a cell: what to probe next, decided only by what the cell has recorded.

Being pure functions of the recorded outcomes, a killed sweep resumes from its last recorded probe
with nothing redone, and a round may propose several values at once (a batched GD trainer then
evaluates them together). Two searches serve every experiment:

- ``SmallestSuccess``: the smallest value in [low, high] that succeeds (the minimum hidden width
  that stores F facts), with a verification round above the answer and, when a prediction is
  given, a first bracket around it;
- ``LargestSuccess``: the largest multiple of a step in [low, high] that succeeds (the most facts
  a fixed-width MLP stores).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """Where a search expects its answer: ``value`` within a factor (1 + ``spread``) either way."""

    value: float
    spread: float = 0.25


@dataclass(frozen=True)
class Step:
    """``next`` empty means done. ``answer`` None when nothing in range succeeded. ``stable``: the
    smallest probed value from which every probed value succeeds (SmallestSuccess with verification)."""

    next: tuple[int, ...]
    answer: int | None
    monotone: bool
    stable: int | None = None

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
             predicted: Prediction | None = None) -> Step:
        """The bracket is (largest failure below the smallest success, smallest success]. Values are
        spread geometrically over a wide bracket and evenly over a narrow one; the top of the range is
        probed only once the bracket below it is narrow (a value far above the answer is never tried).
        Non-monotone observations are flagged and the search still brackets the smallest success.

        ``predicted`` (e.g. from the cells already finished): the first round probes ⌊p/(1+s)⌋ and
        ⌈p·(1+s)⌉ (s = its spread; 0.25 gives 0.8·p and 1.25·p) and arity − 2 values between; a side
        that misses widens by doubling until a failure lies below a success, then the plain search
        takes over. The answer is the same smallest success with a failure just below it, so a bad
        prediction costs probes, never correctness.

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
        if start >= top:
            if not verify:
                return Step((), best, monotone, _stable(observations))
            want, stable = _verify(observations, best, high)
            return Step(tuple(sorted(want)), best, monotone, stable)
        if predicted is not None and predicted.value > 0:
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
    if not inside:  # the first round: a bracket around the prediction
        factor = 1 + max(predicted.spread, 0.0)
        lo = max(low, math.floor(predicted.value / factor))
        hi = min(high, max(math.ceil(predicted.value * factor), low))
        inner = _spread(lo, hi, arity - 2) if arity > 2 and hi > lo + 1 else set()
        return {lo, hi} | inner
    if best is None:  # everything failed: double above the highest failure
        failed = max(below)
        return {min(high, math.ceil(failed * 2 ** (i / arity))) for i in range(1, arity + 1)}
    if not below:  # everything succeeded: halve below the smallest success
        return {max(low, math.floor(best / 2 ** (i / arity))) for i in range(1, arity + 1)}
    return _spread(max(below) + 1, best, arity)


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
    top_failure = max((v for v, ok in observations.items() if not ok), default=0)
    return min((v for v, ok in observations.items() if ok and v > top_failure), default=None)


def _verify(observations: dict[int, bool], found: int, high: int) -> tuple[set[int], int | None]:
    """(values still to probe, stable value) once the plain search found ``found``.

    Success can flicker near the boundary (a construction's random draw, GD that fails at one width
    and stores at a smaller one), so values just above the answer are probed too; past 2·found the
    stable value is reported as unknown.
    """
    ceiling = min(high, 2 * found)
    stable = _stable(observations)
    if stable is None:  # the largest value probed failed: verify above it
        top_failure = max(v for v, ok in observations.items() if not ok)
        return {v for v in verification_values(top_failure) if v <= ceiling} - set(observations), None
    want = {v for v in verification_values(stable) if v <= ceiling} - set(observations)
    return want, (None if want else stable)


@dataclass(frozen=True)
class LargestSuccess:
    """The largest multiple of ``step`` in [low, high] that succeeds, assuming success falls with the value."""

    param: str  # the probe key it searches, e.g. "num_facts"

    def step(self, observations: Mapping[int, bool], low: int, high: int, arity: int = 1, *,
             step: int = 1) -> Step:
        """A k-ary bisection on indices n (value = n·step ≥ 2). The bracket is [largest success,
        smallest failure above it); while nothing succeeded the round probes the smallest value (if
        even that fails the answer is None) and arity − 1 values above it. Observations off the grid
        or out of range are ignored, so a resumed cell continues exactly."""
        observations, low, high = _checked(observations, max(low, 1), max(high, 1), arity)
        lo = max(-(-low // step), -(-2 // step))
        hi = max(lo, high // step)
        seen = {v // step: ok for v, ok in observations.items() if v % step == 0 and lo <= v // step <= hi}
        monotone = not any(ok and any(not ok2 for n2, ok2 in seen.items() if n2 < n) for n, ok in seen.items())
        successes = [n for n, ok in seen.items() if ok]
        best = max(successes) if successes else None
        answer = None if best is None else best * step
        if best is None and seen.get(lo) is False:
            return Step((), None, monotone)
        bottom = lo - 1 if best is None else best
        failures = [n for n, ok in seen.items() if not ok and n > bottom]
        end = min(failures) - 1 if failures else hi  # the largest index not known to fail
        if bottom >= end:
            return Step((), answer, monotone)
        span = end - bottom
        if best is None:
            picks = {lo} | {lo + (end - lo) * i // arity for i in range(1, arity)}
        else:
            picks = {bottom + -(-span * i // (arity + 1)) for i in range(1, arity + 1)}
        return Step(tuple(sorted(n * step for n in picks if n not in seen and bottom < n <= end)), answer, monotone)
