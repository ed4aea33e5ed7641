"""A search opened around a predicted width finds exactly what the plain search finds, on any
prediction, and with fewer probes when the prediction is close."""
import math

import numpy as np
import pytest

from orchestrator.search import Prediction, SmallestSuccess

SEARCH = SmallestSuccess("width")


def run(threshold: int, high: int, arity: int, predicted: float | None,
        spread: float = 0.25) -> tuple[int | None, int]:
    observations = {}
    while True:
        hint = None if predicted is None else Prediction(predicted, spread)
        step = SEARCH.step(observations, 1, high, arity, verify=True, predicted=hint)
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
    first = SEARCH.step({}, 1, 65536, 3, verify=True, predicted=belief)
    assert first.next == (86, 100, 116)  # 100·1.25^(∓0.674) and the median
    # the answer lies in 87…100: one probe, at the width splitting the belief over 87…100 in half
    # (P(m ≤ 92) = 0.420, P(m ≤ 93) = 0.493, P(m ≤ 94) = 0.566 of it)
    second = SEARCH.step({86: False, 100: True, 116: True}, 1, 65536, 3, verify=True, predicted=belief)
    assert second.next == (93,)
    # a belief that missed (everything far above failed) is dropped for the plain doubling
    missed = SEARCH.step({2000: False, 3000: False, 4000: False}, 1, 65536, 3, verify=True,
                         predicted=Prediction(3000.0, spread=0.1))
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
