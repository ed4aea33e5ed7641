"""The smallest-success search (minimum width) against a brute-force oracle on monotone threshold functions."""
import math

import numpy as np
import pytest

from orchestrator import search
from orchestrator.search import SmallestSuccess, is_monotone

next_widths = SmallestSuccess("width").step


def run_search(threshold, low, high, arity, verify=False):
    """Drive the search on 'width stores iff width >= threshold'; return (step, rounds, probes)."""
    observations, rounds = {}, 0
    while True:
        step = next_widths(observations, low, high, arity, verify=verify)
        if step.done:
            return step, rounds, observations
        rounds += 1
        assert 1 <= len(step.next) <= max(arity, 1, 4 if verify else 1)  # a verification round probes up to 4
        for w in step.next:
            assert type(w) is int and low <= w <= high
            assert w not in observations  # never re-proposed
            observations[w] = w >= threshold


def oracle(threshold, low, high):
    """The brute-force answer: the smallest width in range that stores."""
    return next((w for w in range(low, high + 1) if w >= threshold), None)


@pytest.mark.parametrize("arity", [1, 2, 3, 4, 7])
def test_found_width_equals_the_true_minimum_on_random_thresholds(arity):
    rng = np.random.default_rng(arity)
    for _ in range(150):
        low = int(rng.integers(1, 20))
        high = low + int(rng.integers(0, 300))
        threshold = int(rng.integers(low - 3, high + 5))  # below, inside and above the range
        step, rounds, observations = run_search(threshold, low, high, arity)
        assert step.answer == oracle(threshold, low, high)
        assert step.monotone
        span = high - low + 1  # a linear phase plus a geometric one over log2 of the span
        assert rounds <= math.ceil(math.log(span, arity + 1)) + math.ceil(math.log(math.log2(span) + 1, arity + 1)) + 2


def test_binary_search_probes_about_log2_of_the_range():
    counts = []
    for threshold in range(1, 1026):
        _, rounds, observations = run_search(threshold, 1, 1024, 1)
        assert rounds == len(observations)
        counts.append(rounds)
    assert max(counts) <= math.ceil(math.log2(1024)) + math.ceil(math.log2(math.log2(1024))) + 1
    assert np.mean(counts) >= math.log2(1024) - 1


def test_the_paper_range_takes_about_seventeen_probes():
    _, rounds, _ = run_search(12_345, 1, 65_536, 1)
    assert rounds <= 17


@pytest.mark.parametrize("arity", [1, 3])
def test_widths_far_above_the_answer_are_never_probed(arity):
    """GD's cost grows with width: a wide range must not make the search train huge models."""
    for threshold in (3, 40, 300, 2000):
        step, _, observations = run_search(threshold, 1, 65_536, arity)
        assert step.answer == threshold
        assert max(observations) <= max(16 * threshold, 256)


def test_nothing_succeeds_gives_none_after_probing_the_top():
    step, rounds, observations = run_search(10**9, 1, 500, 3)
    assert step.answer is None and step.done and rounds <= 5  # log log of the range
    assert observations[500] is False and all(not ok for ok in observations.values())


def test_everything_succeeds_gives_low():
    step, _, observations = run_search(0, 5, 80, 2)
    assert step.answer == 5 and observations[5] is True


def test_non_monotone_observations_are_flagged_not_hidden():
    observations = {4: True, 6: False, 10: True}
    assert not is_monotone(observations)
    step = next_widths(observations, 1, 16)
    assert not step.monotone
    assert step.answer == 4 and set(step.next) <= {1, 2, 3}  # still searching below the first success
    final = next_widths({**observations, 3: False}, 1, 16)
    assert final.done and final.answer == 4 and not final.monotone


def test_integer_widths_only():
    step = next_widths({12.0: True, 3.0: False}, 1.0, 64, 2)
    assert all(type(w) is int for w in step.next) and type(step.answer) is int
    for bad in (dict(observations={12.5: True}, low=1, high=64), dict(observations={}, low=1, high=64.5)):
        with pytest.raises(ValueError, match="must be an integer"):
            next_widths(bad["observations"], bad["low"], bad["high"])
    with pytest.raises(ValueError, match="arity"):
        next_widths({}, 1, 64, 1.5)


def test_bad_ranges_are_rejected():
    for low, high in ((0, 10), (10, 5)):
        with pytest.raises(ValueError, match="low <= high"):
            next_widths({}, low, high)


def test_observations_outside_the_range_do_not_move_the_answer():
    step = next_widths({200: True, 0: False, 7: False, 8: True}, 1, 100)
    assert step.done and step.answer == 8


def run_verified(stores, low, high, arity, verify=True):
    """Drive the search with verification on an arbitrary (possibly non-monotone) success function."""
    observations = {}
    while True:
        step = next_widths(observations, low, high, arity, verify=verify)
        if step.done:
            return step, observations
        for w in step.next:
            assert w not in observations
            observations[w] = stores(w)


@pytest.mark.parametrize("arity", [1, 3])
def test_verification_keeps_the_answer_and_confirms_monotone_success(arity):
    rng = np.random.default_rng(11 + arity)
    for _ in range(100):
        threshold = int(rng.integers(1, 400))
        plain, _, _ = run_search(threshold, 1, 1024, arity)
        verified, observations = run_verified(lambda w: w >= threshold, 1, 1024, arity)
        assert verified.answer == plain.answer == threshold
        assert verified.stable == threshold and verified.monotone
        expected = {w for w in (threshold + 1, threshold + 2, math.ceil(1.05 * threshold), math.ceil(1.1 * threshold))
                    if w <= min(1024, 2 * threshold)}
        assert expected <= set(observations)  # every verification width was probed


def test_verification_walks_past_widths_that_fail_above_the_answer():
    """Stores from 10 on, except at 12 and 14: the answer stays 10, every probed width from 15 stores."""
    def stores(w):
        return w >= 10 and w not in (12, 14)

    plain = run_search(10, 1, 256, 1)[0]
    step, observations = run_verified(stores, 1, 256, 1)
    assert step.answer == plain.answer == 10
    assert not step.monotone and step.stable == 15
    assert observations[12] is False and observations[14] is False
    assert all(ok for w, ok in observations.items() if w >= 15)


def test_verification_gives_up_above_twice_the_answer():
    observations = {9: False, 10: True, **{w: False for w in range(11, 21)}}
    step = next_widths(observations, 1, 256, verify=True)
    assert step.done and step.answer == 10 and step.stable is None and not step.monotone
    pending = next_widths({9: False, 10: True, 11: False, 12: False}, 1, 256, verify=True)
    assert set(pending.next) == {13, 14} and pending.stable is None  # verifying above 12


def test_the_round_that_settles_the_answer_fills_its_spare_slots_with_verification_widths():
    """46 fails, 49 and 53 store: probing 47 and 48 settles the answer (47, 48 or 49), and the third
    slot takes 50, the width that m+1, m+2 or ⌈1.05m⌉ of all three answers needs."""
    step = next_widths({46: False, 49: True, 53: True}, 1, 65536, 3, verify=True)
    assert step.next == (47, 48, 50)
    assert next_widths({46: False, 49: True, 53: True}, 1, 65536, 3).next == (47, 48)  # without verification


@pytest.mark.parametrize("arity", [2, 3, 5])
def test_filling_the_settling_round_never_changes_the_answer(arity):
    rng = np.random.default_rng(5 + arity)
    for _ in range(200):
        threshold = int(rng.integers(1, 400))
        flicker = threshold + int(rng.integers(1, 4)) if rng.random() < 0.3 else None
        def stores(w):
            return w >= threshold and w != flicker
        step, observations = run_verified(stores, 1, 1024, arity)
        assert step.answer == run_verified(stores, 1, 1024, arity, verify=False)[0].answer
        assert step.monotone == (flicker not in observations or step.answer > flicker)


@pytest.mark.parametrize("arity", [3, 5])
def test_filling_the_settling_round_spares_verification_a_round_of_its_own(arity, monkeypatch):
    def spared():  # searches whose verification added no round
        return sum(run_search(t, 1, 1024, arity, verify=True)[1] == run_search(t, 1, 1024, arity)[1]
                   for t in range(1, 400))
    filled = spared()
    monkeypatch.setattr(search, "_early_verification", lambda *args: set())
    assert filled > 3 * max(spared(), 1)

