"""Minimum-width search as a pure function of the probes so far.

Given every (width → stored?) observation, say which widths to probe next or give the answer.
Being pure, a killed sweep resumes from its recorded probes with nothing redone, and a k-ary
round proposes several widths at once so a batched trainer evaluates them together.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SearchStep:
    """``next_widths`` empty means done; ``min_width`` None when nothing in range succeeded.

    ``stable_width``: the smallest width from which every probed width stores (known once the
    verification round is done; equal to ``min_width`` when success was monotone)."""

    next_widths: tuple[int, ...]
    min_width: int | None
    monotone: bool
    stable_width: int | None = None

    @property
    def done(self) -> bool:
        return not self.next_widths


def _as_width(w, what: str) -> int:
    """Widths are integers; 12.0 read back from a table is 12, 12.5 is an error."""
    if isinstance(w, bool) or int(w) != w:
        raise ValueError(f"{what} must be an integer width, got {w!r}")
    return int(w)


def check_search_range(cell: dict) -> None:
    """A cell's search range as a sweep-file error: one line naming the key and what is allowed."""
    if cell["search_low"] > cell["search_high"]:
        raise ValueError(f"search_high: got {cell['search_high']} below search_low {cell['search_low']}; "
                         "allowed: search_low <= search_high")


def is_monotone(observations: Mapping[int, bool]) -> bool:
    """Success should never be observed below a failure; report it when it is."""
    successes = [w for w, ok in observations.items() if ok]
    failures = [w for w, ok in observations.items() if not ok]
    return not successes or not failures or max(failures) < min(successes)


def _spread(start: int, stop: int, n: int) -> set[int]:
    """n widths inside [start, stop): geometric while the bracket spans more than a factor 2, so a
    wide range costs O(log log) cheap rounds instead of probing huge widths; then evenly spaced."""
    if stop > 2 * start:
        return {round(start * (stop / start) ** (i / (n + 1))) for i in range(1, n + 1)}
    return {start + (stop - start) * i // (n + 1) for i in range(1, n + 1)}


def verification_widths(width: int) -> set[int]:
    """The widths just above a found minimum that must store too: m+1, m+2, ⌈1.05·m⌉, ⌈1.1·m⌉."""
    return {width + 1, width + 2, math.ceil(1.05 * width), math.ceil(1.1 * width)}


def _stable(observations: Mapping[int, bool]) -> int | None:
    """The smallest probed width from which every probed width stores (None if the widest failed)."""
    top_failure = max((w for w, ok in observations.items() if not ok), default=0)
    return min((w for w, ok in observations.items() if ok and w > top_failure), default=None)


def _verify(observations: dict[int, bool], found: int, high: int) -> tuple[set[int], int | None]:
    """(widths still to probe, stable width) once the plain search found ``found``.

    Success can flicker near the boundary (a random construction redrawn per width, GD that fails
    at one width and stores at a smaller one). So widths just above the answer are probed too; if
    one fails, the stable width is the smallest success above the highest failure, verified the same
    way. Never probes above 2·found or ``high``: past that the stable width is reported as unknown.
    """
    ceiling = min(high, 2 * found)
    stable = _stable(observations)
    if stable is None:  # the widest width probed failed: verify above it
        top_failure = max(w for w, ok in observations.items() if not ok)
        return {w for w in verification_widths(top_failure) if w <= ceiling} - set(observations), None
    want = {w for w in verification_widths(stable) if w <= ceiling} - set(observations)
    return want, (None if want else stable)


def next_widths(observations: Mapping[int, bool], low: int, high: int, arity: int = 1,
                verify: bool = False) -> SearchStep:
    """Bisection (arity 1) or a k-ary search for the smallest width in [low, high] that succeeds.

    The bracket is (largest failure below the smallest success, smallest success]. Widths are
    spread geometrically over a wide bracket and evenly over a narrow one; the top of the range is
    probed only once the bracket below it is narrow (a width far above the answer is never trained).
    Non-monotone observations are flagged in ``monotone`` and the search still brackets the
    smallest observed success. With ``verify``, a found minimum is followed by the verification
    rounds of ``_verify``, which never change ``min_width`` (they probe only above it) and give
    ``stable_width``.
    """
    low, high = _as_width(low, "low"), _as_width(high, "high")
    observations = {_as_width(w, "observed width"): bool(ok) for w, ok in observations.items()}
    if not 1 <= low <= high:
        raise ValueError(f"search range must satisfy 1 <= low <= high, got low={low}, high={high}")
    if isinstance(arity, bool) or int(arity) != arity or arity < 1:
        raise ValueError(f"arity must be >= 1, got {arity}")
    monotone = is_monotone(observations)
    successes = [w for w, ok in observations.items() if ok and low <= w <= high]
    best = min(successes) if successes else None
    top = best if best is not None else high + 1
    below = [w for w, ok in observations.items() if not ok and low <= w < top]
    start = max(below) + 1 if below else low
    if best is None and high in observations:
        return SearchStep((), None, monotone)
    if start >= top:
        if not verify:
            return SearchStep((), best, monotone, _stable(observations))
        want, stable = _verify(observations, best, high)
        return SearchStep(tuple(sorted(want)), best, monotone, stable)
    if best is not None:
        picks = _spread(start, top, arity)
    elif high > 2 * start:  # nothing stored yet: gallop over the lower half of the log range
        reach = math.sqrt(high / start)
        picks = {round(start * reach ** (i / arity)) for i in range(1, arity + 1)}
    else:  # nothing stored yet and the rest of the range is narrow: the round includes the top
        picks = {high} | {start + (high - start) * i // arity for i in range(1, arity)}
    picks = sorted(w for w in picks if w not in observations and start <= w <= min(top - 1, high))
    return SearchStep(tuple(picks), best, monotone)
