"""orchestrator/search.py: the searches against brute-force oracles on monotone threshold
functions (the smallest-success width search, its verification round, a search opened around a
prediction), and the Search protocol the orchestrator drives, resumed from recorded rows."""
import math

import numpy as np
import pytest

from orchestrator import search
from orchestrator.search import (Independent, LargestSuccess, Prediction, SmallestSuccess, is_monotone,
                                 prediction_columns, recorded_prediction, verification_values)

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


# A search opened around a prediction finds exactly what the plain search finds, on any prediction,
# and with fewer probes when the prediction is close.

SEARCH = SmallestSuccess("width")


def run(threshold: int, high: int, arity: int, predicted: float | None,
        spread: float = 0.25) -> tuple[int | None, int]:
    observations = {}
    while True:
        prediction = None if predicted is None else Prediction(predicted, spread)
        step = SEARCH.step(observations, 1, high, arity, verify=True, prediction=prediction)
        if step.done:
            return step.answer, len(observations)
        for w in step.next:
            assert w not in observations and 1 <= w <= high
            observations[w] = w >= threshold


@pytest.mark.parametrize("arity", [1, 2, 3])
def test_any_prediction_gives_the_plain_answer(arity):
    rng = np.random.default_rng(arity)
    for _ in range(200):
        threshold = int(rng.integers(1, 3000))
        predicted = threshold * float(np.exp(rng.normal(0, 1.5)))  # from close to 20x off
        plain, _ = run(threshold, 65536, arity, None)
        guided, _ = run(threshold, 65536, arity, predicted)
        assert guided == plain == threshold


@pytest.mark.parametrize("predicted", [1.0, 0.001, 1e9])
def test_a_badly_wrong_prediction_still_finds_the_answer(predicted):
    assert run(700, 65536, 3, predicted)[0] == 700
    assert run(10**6, 4096, 3, predicted)[0] is None  # nothing stores within range


def test_a_close_prediction_costs_fewer_probes():
    plain, guided = [], []
    for threshold in range(50, 2000, 37):
        plain.append(run(threshold, 65536, 3, None)[1])
        guided.append(run(threshold, 65536, 3, threshold * 1.1)[1])
    assert np.mean(guided) < 0.85 * np.mean(plain)


def test_the_belief_is_log_normal_around_the_prediction():
    belief = Prediction(100.0, spread=0.25)
    assert belief.quantile(0.5) == pytest.approx(100.0)
    # one standard deviation of the log is a factor 1.25: 84.1% of the belief lies below 125
    assert belief.probability_below(125.0) == pytest.approx(0.8413, abs=1e-4)
    for q in (0.05, 0.25, 0.75, 0.95):
        assert belief.probability_below(belief.quantile(q)) == pytest.approx(q)
    assert belief.probability_below(0.0) == 0.0


def test_a_predicted_search_opens_on_the_quartiles_then_bisects_at_the_belief_median():
    belief = Prediction(100.0, spread=0.25)
    first = SEARCH.step({}, 1, 65536, 3, verify=True, prediction=belief)
    assert first.next == (86, 100, 116)  # 100·1.25^(∓0.674) and the median
    # the answer lies in 87…100: one probe, at the width splitting the belief over 87…100 in half
    # (P(m ≤ 92) = 0.420, P(m ≤ 93) = 0.493, P(m ≤ 94) = 0.566 of it)
    second = SEARCH.step({86: False, 100: True, 116: True}, 1, 65536, 3, verify=True, prediction=belief)
    assert second.next == (93,)
    # a belief that missed (everything far above failed) is dropped for the plain doubling
    missed = SEARCH.step({2000: False, 3000: False, 4000: False}, 1, 65536, 3, verify=True,
                         prediction=Prediction(3000.0, spread=0.1))
    assert missed.next == (5040, 6350, 8000)


@pytest.mark.parametrize("spread", [0.0, -1.0, float("nan"), float("inf"), 1e-12])
@pytest.mark.parametrize("predicted", [100.0, float("inf"), 1e300, 1e-300])
def test_a_degenerate_belief_still_finds_the_answer_without_crawling(spread, predicted):
    for threshold in (3, 50, 100, 101, 5000):
        answer, probes = run(threshold, 65536, 3, predicted, spread)
        assert answer == threshold
        # widening from a belief far off costs arity probes per factor 2 between it and the answer;
        # a search that crept one width at a time would cost the distance itself (from 1 to 50: 49)
        start = min(max(predicted, 1), 65536)
        assert probes <= 3 * abs(math.log2(threshold / start)) + 25


# The Search protocol as the orchestrator drives it (Experiment.next_round): observe the
# recorded rows, propose unless done; a resumed cell rebuilds its state from those rows alone.

CELL = {"search_low": 1, "search_high": 4096, "search_arity": 3, "search_verify": True}


def row_of(probe: dict, threshold: int) -> dict:
    """The row a probe records on the oracle 'stores iff width >= threshold' (accuracy rising to 1 there)."""
    width = probe["width"]
    return {**probe, "success": width >= threshold, "accuracy": min(1.0, width / threshold)}


def read_back(rows: list[dict], seed: int, key: str = "width") -> list[dict]:
    """Rows as a resumed sweep reads them: another order, the integer probe values as floats (a
    Parquet column holding NaN reads back as float)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    return [{**rows[i], key: float(rows[i][key])} for i in order]


def drive(found: search.Search, cell: dict, oracle, prediction: Prediction | None = None, rows=None):
    """Run ``found`` through the protocol to its end; return (final state, rows, the proposal of each round)."""
    rows, rounds = list(rows or []), []
    while not found.done(state := found.observe(cell, rows, prediction)):
        probes = found.propose(state)
        assert probes and not any(p in [{k: r[k] for k in p} for r in rows] for p in probes)  # nothing redone
        rounds.append(probes)
        rows += [oracle(p) for p in probes]
    assert found.propose(state) == []
    return state, rows, rounds


def declared_search() -> SmallestSuccess:
    """A fresh search object, as a restarted process declares it."""
    return SmallestSuccess("width", score=lambda cell, row: row["accuracy"])


@pytest.mark.parametrize("prediction", [None, Prediction(300.0, 0.25), Prediction(9.0, 0.1)])
@pytest.mark.parametrize("threshold", [1, 7, 300, 1234, 5000])
def test_the_protocol_finds_the_oracle_answer_and_a_crash_resumes_it_with_the_same_proposals(threshold, prediction):
    oracle = lambda probe: row_of(probe, threshold)  # noqa: E731
    state, rows, rounds = drive(declared_search(), CELL, oracle, prediction)
    expected = threshold if threshold <= CELL["search_high"] else None
    assert state.answer == expected and state.monotone
    assert state.stable == expected
    if expected is not None:
        assert {w for w in verification_values(expected) if w <= 2 * expected} <= {r["width"] for r in rows}
    # A crash after each round: a new process rebuilds the search and the prediction from the rows
    # recorded so far, proposes what the uninterrupted search proposed next, and ends on the same answer.
    recorded = 0
    for i, probes in enumerate(rounds):
        extra = prediction_columns("width", prediction)
        saved = read_back([{**r, **extra} for r in rows[:recorded]], seed=i)
        resumed_prediction = recorded_prediction("width", saved) if saved else prediction
        assert resumed_prediction == prediction
        again = declared_search()
        assert again.propose(again.observe(CELL, saved, resumed_prediction)) == probes
        recorded += len(probes)
    resumed, _, _ = drive(declared_search(), CELL, oracle, prediction, rows=read_back(rows[:recorded // 2], seed=9))
    assert resumed.answer == state.answer and resumed.stable == state.stable


def test_the_orchestrator_drives_the_declared_search_and_not_the_experiments_own_next_probes():
    from orchestrator.experiment import Experiment

    def refuse(*args):
        raise AssertionError("summarize and run_probes are not the search's business")
    toy = Experiment(name="toy", params={}, run_probes=refuse, summarize=refuse, search=declared_search())
    rows = [row_of({"width": w}, 300) for w in (16, 64, 256, 1024)]
    assert toy.next_round(CELL, rows) == toy.search.propose(toy.search.observe(CELL, rows))
    # 256 fails, 1024 stores: three widths spread geometrically over 257…1023
    assert [p["width"] for p in toy.next_round(CELL, rows)] == [round(257 * (1024 / 257) ** (i / 4)) for i in (1, 2, 3)]
    with pytest.raises(TypeError, match="exactly one of search and next_probes"):
        Experiment(name="both", params={}, run_probes=refuse, summarize=refuse, search=toy.search,
                   next_probes=lambda cell, results: [])


def test_independent_searches_one_value_per_setting_on_its_own_rows_and_resumes():
    """Two settings of one cell, each its own largest-success search over F (transformer_capacity)."""
    cell = {"search_low": 16, "search_high": 1024, "search_arity": 2, "search_verify": True, "facts_step": 16}
    truth = {"inside": 400, "alone": 16}
    both = Independent("setting", {s: LargestSuccess("num_facts", grid_key="facts_step") for s in truth})

    def oracle(probe):
        return {**probe, "success": probe["num_facts"] <= truth[probe["setting"]]}
    state, rows, rounds = drive(both, cell, oracle)
    assert {s: state[s].answer for s in truth} == {"inside": 400, "alone": 16}
    assert all(r["num_facts"] % 16 == 0 for r in rows)
    assert both.params == {}  # declared by neither
    recorded = 0
    for i, probes in enumerate(rounds):
        again = Independent("setting", {s: LargestSuccess("num_facts", grid_key="facts_step") for s in truth})
        saved = read_back(rows[:recorded], seed=i, key="num_facts")
        assert again.propose(again.observe(cell, saved)) == probes
        recorded += len(probes)


def test_independent_searches_must_agree_on_what_they_search_and_declare():
    with pytest.raises(TypeError, match="different probe keys"):
        Independent("setting", {"a": LargestSuccess("num_facts"), "b": LargestSuccess("width")})
    with pytest.raises(TypeError, match="declare their parameters differently"):
        Independent("setting", {"a": LargestSuccess("num_facts", low=1), "b": LargestSuccess("num_facts", low=2)})


def test_a_largest_success_search_refuses_a_prediction_it_cannot_use():
    cell = {"search_low": 16, "search_high": 1024, "search_arity": 1, "search_verify": False}
    with pytest.raises(ValueError, match="takes no prediction"):
        LargestSuccess("num_facts").observe(cell, [], Prediction(100.0))


def test_a_search_declares_its_parameters_in_order_with_the_experiments_defaults():
    low, high, arity, grid, verify = (object() for _ in range(5))
    assert list(SmallestSuccess("width", low=low, high=high, arity=arity, verify=verify).params.items()) == [
        ("search_low", low), ("search_high", high), ("search_arity", arity), ("search_verify", verify)]
    assert list(LargestSuccess("num_facts", low=low, high=high, arity=arity, verify=verify, grid_key="facts_step",
                               grid=grid).params) == ["search_low", "search_high", "search_arity", "facts_step",
                                                      "search_verify"]
