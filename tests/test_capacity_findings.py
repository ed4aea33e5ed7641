"""The findings text states the paper's claims with the right numbers and verdicts."""
from factmlp.experiments.capacity_findings import capacity_findings


def cell(method, facts, params):
    return {"method": method, "geometry": "spherical", "d": 32, "num_facts": facts, "params": params,
            "search_high": 8192, "threshold": 1.0}


def power(method, s, low, high):
    return {"law": "power", "method": method, "geometry": "spherical", "s": s, "s_low": low, "s_high": high, "r2": 0.99}


def test_gaps_are_taken_at_the_largest_f_both_methods_stored():
    cells = [cell("gd", 128, 480), cell("gd", 256, 864), cell("encoder_decoder", 128, 8360),
             cell("encoder_decoder", 256, 17280), cell("ntk", 128, 135168), {**cell("ntk", 256, float("nan")), "best_accuracy": 0.42}]
    text = capacity_findings(cells, [])
    assert "F = 256: gd needs 20× fewer parameters than encoder_decoder (864 vs 17,280)" in text
    assert "F = 128: gd needs 282× fewer parameters than ntk" in text
    assert "F = 256: ntk stores nothing up to width 8192 (best accuracy 0.42, threshold 1.0)" in text
    assert "ntk stores nothing at F = 256 within its search range, where gd needs 864 parameters" in text


def test_matching_slopes_and_a_steeper_prior_are_judged_by_their_intervals():
    fits = [power("gd", 0.95, 0.9, 1.0), power("encoder_decoder", 0.97, 0.93, 1.02), power("ntk", 0.6, 0.5, 0.7)]
    cells = [cell(m, 128, 1000) for m in ("gd", "encoder_decoder", "ntk")]
    text = capacity_findings(cells, fits)
    assert "Matching asymptotics, encoder_decoder vs gd (spherical): holds" in text
    assert "The prior construction scales worse (spherical): holds — ntk slope 0.6" in text
    fits[1] = power("encoder_decoder", 0.7, 0.65, 0.75)
    assert "Matching asymptotics, encoder_decoder vs gd (spherical): does not hold" in capacity_findings(cells, fits)
