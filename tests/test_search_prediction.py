"""A search opened around a predicted width finds exactly what the plain search finds, on any
prediction, and with fewer probes when the prediction is close."""
import numpy as np
import pytest

from orchestrator.search import Prediction, SmallestSuccess

SEARCH = SmallestSuccess("width")


def run(threshold: int, high: int, arity: int, predicted: float | None) -> tuple[int | None, int]:
    observations = {}
    while True:
        hint = None if predicted is None else Prediction(predicted)
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
