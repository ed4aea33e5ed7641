"""Findings claim only what the cells support: verdicts need enough F, octaves and seeds, slopes are
judged by an equivalence margin on their paired difference, costs only at measured F."""
import math

import numpy as np

from factmlp.experiments.capacity import EXPERIMENT

capacity_findings = EXPERIMENT.reporting.findings


def cells(method, facts, slope, constant, seeds=(0, 1, 2), noise=0.03):
    """Cells whose cost follows log2 F = slope·log2 W + c, with a per-(F, seed) wobble shared by all
    methods (the fact set) plus a small one of their own."""
    out = []
    for f in facts:
        for s in seeds:
            shared = np.random.default_rng([f, s]).normal(0, noise)
            own = np.random.default_rng([f, s, len(method)]).normal(0, noise / 3)
            params = constant * 2.0 ** (math.log2(f) / slope) * math.exp(shared + own)
            out.append({"method": method, "geometry": "spherical", "d": 32, "num_facts": f, "seed": s,
                        "params": params, "search_high": 65536, "threshold": 1.0, "monotone": True})
    return out


WIDE = (128, 256, 512, 1024)  # four values of F over three octaves


def test_two_octaves_of_f_are_inconclusive():
    text = capacity_findings(cells("gd", (128, 256, 512), 1.0, 4) + cells("hebbian", (128, 256, 512), 1.0, 60), [])
    assert "matching asymptotics, hebbian vs gd: inconclusive" in text
    assert "spanning 2.0 octaves" in text and "holds" not in text


def test_equal_slopes_match_and_unequal_slopes_do_not():
    same = capacity_findings(cells("gd", WIDE, 1.0, 4) + cells("encoder_decoder", WIDE, 1.0, 60), [])
    assert "matching asymptotics, encoder_decoder vs gd: holds" in same
    steeper = capacity_findings(cells("gd", WIDE, 1.0, 4) + cells("encoder_decoder", WIDE, 0.7, 60), [])
    assert "matching asymptotics, encoder_decoder vs gd: does not hold" in steeper


def test_noisy_slopes_whose_interval_straddles_the_margin_are_inconclusive():
    text = capacity_findings(cells("gd", WIDE, 1.0, 4, noise=0.4) + cells("x", WIDE, 1.05, 60, noise=0.4), [])
    assert "matching asymptotics, x vs gd: inconclusive — the interval reaches past ±0.1" in text


def test_one_seed_gives_no_verdict():
    text = capacity_findings(cells("gd", WIDE, 1.0, 4, seeds=(0,)) + cells("x", WIDE, 1.0, 60, seeds=(0,)), [])
    assert "inconclusive — gd stored at 0 value(s) of F in ≥ 3 seeds" in text


def test_constants_are_compared_at_measured_f_only():
    text = capacity_findings(cells("gd", WIDE, 1.0, 4) + cells("x", WIDE, 1.0, 60), [])
    assert "gd has a smaller constant than x: holds" in text
    assert "At F = 1024 (largest F both stored" in text and "x needs 14.9×" in text
    assert "4096" not in text and "16384" not in text  # nothing beyond the measured range


def test_cells_and_seeds_are_named():
    text = capacity_findings(cells("gd", WIDE, 1.0, 4) + cells("x", WIDE, 1.0, 60), [])
    assert "cells: F = 128, 256, 512, 1024; seeds 0, 1, 2; 24 cells" in text


def test_a_prior_construction_that_stops_storing_is_an_observation_not_a_verdict():
    prior = cells("ntk", (128,), 1.0, 800)
    prior += [{**c, "params": float("nan"), "best_accuracy": 0.4} for c in cells("ntk", (256, 512, 1024), 1.0, 1)]
    text = capacity_findings(cells("gd", WIDE, 1.0, 4) + prior, [])
    assert "the prior construction scales worse than gd: inconclusive — ntk stored at 1 value(s) of F" in text
    assert "observed — ntk stores nothing at F = 256 up to width 65536 in 3 seed(s)" in text


def test_degenerate_fits_are_warnings_without_numbers():
    fit = {"law": "size", "method": "gd", "geometry": "spherical", "d": 32, "size_constant": 1.23456,
           "size_constant_low": 1, "size_constant_high": 2, "size_offset": 64.0, "size_offset_low": 64.0,
           "size_offset_high": 64.0, "r2": -0.376, "n": 4, "problems": "R² = -0.38 < 0.5"}
    text = capacity_findings(cells("gd", WIDE, 1.0, 4), [fit])
    assert "⚠ size law (method = gd, geometry = spherical, d = 32): degenerate fit (R² = -0.38 < 0.5)" in text
    assert "1.23" not in text and "b = 64" not in text


def test_rho_exponent_is_compared_with_two():
    fit = {"law": "rho", "method": "encoder_decoder", "geometry": "spike", "d": 32, "num_facts": 256, "rho_exponent": 0.55,
           "rho_exponent_low": 0.4, "rho_exponent_high": 0.7, "rho_intercept": 1.0, "rho_intercept_low": 0.9,
           "rho_intercept_high": 1.1, "r2": 0.9, "n": 24, "seeds": 3,
           "problems": ""}
    text = capacity_findings(cells("gd", WIDE, 1.0, 4), [fit])
    assert "ρ predicts the cost (method = encoder_decoder" in text and "holds (cost rises as ρ falls)" in text
    assert "disagrees with p ≈ 2" in text


def test_a_methods_own_options_do_not_set_its_cells_apart_from_the_others():
    """gd cells carry gd_epochs and encoder_decoder cells do not (in a table: NaN); both are one setting."""
    gd = [{**c, "gd_epochs": 3000} for c in cells("gd", WIDE, 1.0, 4)]
    ed = [{**c, "gd_epochs": math.nan, "encoder_decoder_bucket_size": 0} for c in cells("encoder_decoder", WIDE, 1.0, 60)]
    text = capacity_findings(gd + ed, [])
    assert "matching asymptotics, encoder_decoder vs gd: holds" in text and "gd_epochs" not in text
    # Two GD recipes in one sweep are two settings, never pooled as if they were seeds; the
    # encoder_decoder cells are compared with each.
    longer = [{**c, "gd_epochs": 10000} for c in cells("gd", WIDE, 2.0, 4)]
    text = capacity_findings(gd + longer + ed, [])
    assert "d = 32, gd_epochs = 3000: matching asymptotics, encoder_decoder vs gd: holds" in text
    assert "d = 32, gd_epochs = 10000: matching asymptotics, encoder_decoder vs gd: does not hold" in text


def test_the_spike_axis_is_compared_paired_by_seed():
    def axis(rows, name, factor):
        return [{**r, "geometry": "spike", "spike_axis": name, "params": r["params"] * factor, "rho": 0.5 / factor}
                for r in rows]
    base = cells("x", (256,), 1.0, 60)
    text = capacity_findings(axis(base, "random", 1.0) + axis(base, "row", 1.6), [])
    assert "corresponds to `spike_axis = row`" in text
    assert "x, d = 32, F = 256: median ρ 0.5 (random axis) vs 0.312 (row axis); row axis needs 1.6× [1.6, 1.6]" in text
    assert "The row axis costs more: holds" in text
    same = capacity_findings(axis(base, "random", 1.0) + axis(base, "row", 1.0), [])
    assert "below resolution: the same parameters in each of 3 paired seed(s)" in same
    assert "The row axis costs more: inconclusive" in same
    two_seeds = [r for r in axis(base, "random", 1.0) + axis(base, "row", 1.6) if r["seed"] < 2]
    assert "inconclusive — 2 paired seed(s)" in capacity_findings(two_seeds, [])


def test_spike_targets_show_cost_against_rho_with_keys_as_the_control():
    rows = []
    for target, rho_end, cost_end in (("values", 0.26, 1.5), ("keys", 0.53, 1.6)):
        for beta, rho, cost in ((0.0, 0.53, 1.0), (10.0, rho_end, cost_end)):
            rows += [{**r, "geometry": "spike", "spike_on": target, "beta": beta, "rho": rho, "params": r["params"] * cost}
                     for r in cells("x", (256,), 1.0, 60)]
    text = capacity_findings(rows, [])
    assert "it is the control for the ρ law" in text
    assert "x, spike on keys, d = 32, F = 256: β 0 → 10: median ρ 0.53 → 0.53; cost ×1.6 [1.6, 1.6]" in text
    assert "x, spike on values, d = 32, F = 256: β 0 → 10: median ρ 0.53 → 0.26; cost ×1.5 [1.5, 1.5]" in text


def test_shared_verdict_rules():
    from factmlp.experiments.verdicts import against
    assert against([0.2, 0.25, 0.21], 0.0)[0] == "holds"
    assert against([0.2, -0.25, 0.21], 0.0)[0].startswith("inconclusive — the interval contains 0")
    assert against([0.0, 0.0, 0.0], 0.0)[0].startswith("inconclusive — the 3 replicates are identical (0)")
    assert against([0.2, 0.25], 0.0)[0].startswith("inconclusive — 2 seed(s)")
    assert against([1.01, 1.02, 1.0], 1.05, above=False)[0] == "holds"


def test_slopes_are_compared_on_the_f_both_methods_stored():
    """GD bends at F = 1024; x was measured to F = 512 only. Like for like (F = 64–512) the slopes
    are equal; GD's slope over its own longer range would make them look different."""
    facts = (64, 128, 256, 512)
    gd = cells("gd", facts, 1.0, 4) + [{**c, "params": c["params"] * 3.0} for c in cells("gd", (1024,), 1.0, 4)]
    text = capacity_findings(gd + cells("x", facts, 1.0, 60), [])
    assert "matching asymptotics, x vs gd: holds" in text
    assert "on the F both stored" in text and "cells: F = 64, 128, 256, 512; seeds 0, 1, 2; 24 cells" in text


def test_a_method_that_stores_nothing_where_gd_stores_does_not_match_its_asymptotics():
    facts = (64, 128, 256, 512)
    lost = [{**c, "params": float("nan"), "best_accuracy": 0.97} for c in cells("x", (1024,), 1.0, 60)]
    text = capacity_findings(cells("gd", facts + (1024,), 1.0, 4) + cells("x", facts, 1.0, 60) + lost, [])
    assert "matching asymptotics, x vs gd: does not hold at this d — x stores nothing at F = 1024" in text
    assert "On the common range, slope difference" in text


def test_the_slope_interval_is_the_wider_of_the_bootstrap_and_the_per_seed_fits():
    """Each seed's fact sets follow their own slope (0.9, 1.0, 1.1 against GD's 1.0): resampling
    seeds within F mixes them and narrows the interval; one fit per seed shows the real spread."""
    gd = cells("gd", WIDE, 1.0, 4)
    x = [c for s, slope in enumerate((0.9, 1.0, 1.1)) for c in cells("x", WIDE, slope, 60, seeds=(s,))]
    text = capacity_findings(gd + x, [])
    line = next(l for l in text.splitlines() if "matching asymptotics, x vs gd" in l)
    assert "per-seed t interval" in line
    low, high = (float(v) for v in line.split("[")[1].split("]")[0].split(", "))
    assert high - low > 0.3 and "inconclusive" in line


def test_identical_replicates_are_named_with_their_resolution_and_never_a_verdict():
    from factmlp.experiments.verdicts import against
    verdict, numbers = against([704, 704, 704], 0.0, resolution="F is searched on multiples of 64")
    assert verdict == "inconclusive — the 3 replicates are identical (704); F is searched on multiples of 64"
    assert "[704, 704]" not in numbers


def test_bounded_intervals_never_run_past_their_bounds():
    from factmlp.experiments.verdicts import DIFFERENCE, FRACTION, against, summary
    recall = [0.999, 0.997, 0.995]
    assert summary(recall)[2] > 1.0  # a raw t interval runs past 1 ...
    mean, low, high, _ = summary(recall, FRACTION)
    assert 0.95 < low < mean < high < 1.0  # ... the logit one does not
    assert summary([1.0, 1.0, 0.998], FRACTION)[2] < 1.0
    assert -1.0 < summary([0.9, 0.95, -0.2], DIFFERENCE)[1] < summary([0.9, 0.95, -0.2])[1] + 1.0
    assert against([0.999, 0.997, 0.995], 0.99, bounds=FRACTION)[0] in ("holds", "inconclusive — the interval contains 0.99")


def test_a_cost_difference_within_one_width_step_is_below_resolution():
    """d = 384: one hidden unit of GD is 3·384 = 1152 parameters, a third of a 4-unit model."""
    rows = [{"method": "gd", "geometry": g, "d": 384, "num_facts": 256, "seed": s, "min_width": w,
             "params": 1152 * w, "rho": 0.6 if g == "spherical" else 0.45, "threshold": 0.98, "monotone": True}
            for s in (0, 1, 2) for g, w in (("spherical", 3), ("llm_mlp_io", 3 + (s == 1)))]
    text = capacity_findings(rows, [])
    assert "below resolution: in each of 3 paired seed(s) the costs differ by at most one step" in text
    assert "one unit = 1152 parameters, up to 33% of the cost" in text
    assert "The real embeddings cost more: inconclusive" in text and "the same parameters" not in text


def test_condition_number_cells_are_judged_against_the_spike_cells_rho_curve():
    def rows(geometry, knob, rho, params, seeds=(0, 1, 2)):
        return [{"method": "x", "geometry": geometry, "d": 128, "num_facts": 1024, "seed": s, "rho": rho,
                 "params": params * (1 + 0.01 * s), "min_width": 100, "threshold": 1.0, "monotone": True,
                 "beta" if geometry == "spike" else "kappa": knob} for s in seeds]
    spike = [r for b, rho in zip((0, 2, 4, 6, 10), (0.63, 0.6, 0.54, 0.48, 0.41))
             for r in rows("spike", b, rho, 1000 * (0.63 / rho) ** 2)]
    on = capacity_findings(spike + rows("condition", 100, 0.56, 1000 * (0.63 / 0.56) ** 2), [])
    assert "x, d = 128, F = 1024: κ cells (ρ 0.56) against the spike's ρ curve: on one curve (holds)" in on
    off = capacity_findings(spike + rows("condition", 100, 0.56, 2000 * (0.63 / 0.56) ** 2), [])
    assert "off the curve (does not hold). Cost over the curve's prediction ×2" in off
    outside = capacity_findings(spike + rows("condition", 100, 0.7, 900), [])
    assert "not compared — some κ cells' ρ lies outside the spike cells' range" in outside
