"""Scaling fits recover known laws, and their intervals cover the truth and shrink with less noise."""
from __future__ import annotations

import numpy as np
import pytest

from factmlp.scaling import POWER, RHO, SIZE, fit

FACTS = np.array([256, 512, 1024, 2048, 4096, 8192] * 3, dtype=float)


def test_size_law_recovers_c_and_b():
    params = 2.5 * FACTS * (np.log2(FACTS) + 3.0)
    result = fit("size", FACTS, params, n_boot=200)
    assert result.estimates["C"] == pytest.approx(2.5, rel=2e-2)
    assert result.estimates["b"] == pytest.approx(3.0, abs=0.1)
    assert result.r2 > 0.999 and len(result.rows) == len(FACTS)


def test_power_law_slope_and_noisy_interval_covers_truth():
    rng = np.random.default_rng(0)
    params = 2.0 ** ((np.log2(FACTS) - 1.5) / 0.9) * np.exp(rng.normal(0, 0.05, len(FACTS)))
    result = fit("power", FACTS, params, n_boot=400)
    low, high = result.intervals["s"]
    assert low < 0.9 < high and high - low < 0.1
    assert result.estimates["s"] == pytest.approx(0.9, abs=0.03)


def test_rho_law_exponent():
    rho = np.array([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6])
    params = np.exp(4.0 + 2.0 * np.log(1 / rho))
    result = fit("rho", rho, params, n_boot=100)
    assert result.estimates["p"] == pytest.approx(2.0, abs=1e-6)
    assert result.estimates["a"] == pytest.approx(4.0, abs=1e-6)
    assert result.problems() == []


def test_a_rho_law_over_a_rho_that_does_not_move_is_degenerate():
    rho = np.array([0.533, 0.54, 0.547, 0.535, 0.544])  # a keys-only spike: the values' ρ stays put
    params = np.array([14000.0, 16000, 21000, 24000, 25000])  # cost moves for another reason
    problems = fit("rho", rho, params, n_boot=50).problems()
    assert any("ρ spans only 0.533–0.547" in p for p in problems)


def test_rows_with_missing_results_are_left_out_and_named():
    params = 3.0 * FACTS * np.log2(FACTS)
    params[[1, 4]] = np.nan
    result = fit("size", FACTS, params, n_boot=50)
    assert 1 not in result.rows and 4 not in result.rows and len(result.rows) == len(FACTS) - 2


def test_too_few_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3 rows"):
        fit("power", [256, 512], [1000, 2000])


def test_a_fit_with_replicates_reports_the_wider_interval_and_names_it():
    facts = np.repeat([128, 256, 512, 1024], 3)
    seeds = np.tile([0, 1, 2], 4)
    slopes = np.array([0.8, 1.0, 1.25])[seeds]  # each seed's fact sets scale differently
    params = 4 * 2.0 ** (np.log2(facts) / slopes)
    booted = fit("power", facts, params, strata=facts, n_boot=300)
    both = fit("power", facts, params, strata=facts, replicates=seeds, n_boot=300)
    assert booted.interval_kind["s"] == "stratified bootstrap"
    assert both.interval_kind["s"] == "per-seed t"
    assert both.intervals["s"][1] - both.intervals["s"][0] > booted.intervals["s"][1] - booted.intervals["s"][0]
    assert both.estimates == booted.estimates


def test_each_law_object_fits_itself_and_draws_its_curve_through_the_data():
    """The curve a figure draws is the law in its drawn axes: W at F (size), F at W (power), W at 1/ρ
    (ρ); on exact data it passes through every point and its band holds it."""
    rng = np.random.default_rng(1)
    rho = np.array([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6])
    size_w = 2.5 * FACTS * (np.log2(FACTS) + 3.0)
    power_w = 2.0 ** ((np.log2(FACTS) - 1.5) / 0.9)
    rho_w = np.exp(4.0 + 2.0 * np.log(1 / rho))
    cases = ((SIZE, FACTS, size_w, FACTS, size_w), (POWER, FACTS, power_w, power_w, FACTS),
             (RHO, rho, rho_w, 1 / rho, rho_w))
    for law, x, y, drawn_x, drawn_y in cases:
        noisy = y * np.exp(rng.normal(0, 0.02, len(y)))
        result = law.fit(x, noisy, n_boot=100)
        assert set(result.estimates) == set(law.parameters) == set(law.columns)
        assert np.allclose(result.curve(drawn_x), drawn_y, rtol=0.1), law.name
        low, high = result.band(drawn_x)
        curve = result.curve(drawn_x)
        assert np.all(low <= curve * (1 + 1e-9)) and np.all(curve <= high * (1 + 1e-9)) and np.any(high > low)
    assert {law.name for law in (SIZE, POWER, RHO)} == {"size", "power", "rho"}
