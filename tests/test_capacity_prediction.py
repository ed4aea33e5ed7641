"""The width predicted for a capacity cell from the finished cells of its setting: close on a
measured GD grid, exact on a law it can represent, never mixing settings, and the GD rule of thumb
when nothing has finished."""
import math

import pytest

from factmlp.experiments.capacity_prediction import predict

SETTING = {"method": "gd", "geometry": "spherical", "tied": True, "mapping": "permutation", "threshold": 1.0, "seed": 0}
# Minimum widths measured by benchmarks/search_efficiency.py (GD, 10k epochs, lr 1e-3), (d, F) -> m.
MEASURED = {(64, 128): 4, (32, 128): 6, (64, 256): 6, (32, 256): 10, (64, 512): 11, (32, 512): 21,
            (64, 1024): 23, (32, 1024): 49}


def cell(d, facts, **changes):
    return {**SETTING, "d": d, "num_facts": facts, **changes}


def finished(widths: dict) -> list[dict]:
    return [{**cell(d, f), "min_width": m, "stored": True} for (d, f), m in widths.items()]


def test_the_largest_measured_cells_are_predicted_within_ten_percent_from_the_smaller_ones():
    for target in [(64, 1024), (32, 1024)]:
        before = {k: m for k, m in MEASURED.items() if k[1] / k[0] < target[1] / target[0]}
        hint = predict(cell(*target), finished(before))
        assert abs(hint.value / MEASURED[target] - 1) < 0.10, (target, hint)
        assert 0.06 <= hint.spread <= 0.25


def test_a_bending_power_law_is_extrapolated_one_octave_within_two_percent():
    def law(d, f):  # log2 m = 1 + 0.7 x + 0.1 x^2, x = log2(F/d): the slope grows with F/d
        x = math.log2(f / d)
        return 2 ** (1 + 0.7 * x + 0.1 * x * x)
    known = {(d, f): law(d, f) for d in (32, 64) for f in (64, 128, 256, 512) if f / d <= 8}
    hint = predict(cell(32, 512), finished(known))
    assert hint.value == pytest.approx(law(32, 512), rel=0.02)
    assert hint.spread == 0.06  # the fit predicted every earlier cell it could exactly


def test_other_settings_and_unstored_cells_are_never_used():
    others = [{**c, "geometry": "anisotropic"} for c in finished(MEASURED)]
    failed = [{**cell(32, 512), "min_width": None, "stored": False}]
    assert predict(cell(32, 2048, method="hebbian"), others + failed) is None
    only = predict(cell(32, 2048), others + failed + finished({(32, 256): 10}))
    assert only.value == pytest.approx(10 * 8) and only.spread == 0.25  # one cell: m ∝ F/d


def test_a_gd_cell_with_nothing_finished_opens_around_the_rule_of_thumb():
    hint = predict(cell(32, 960), [])
    assert hint.value == pytest.approx(960 / (0.75 * 32)) and hint.spread == 0.5
    assert predict(cell(32, 960, method="hebbian_whitened"), []) is None
