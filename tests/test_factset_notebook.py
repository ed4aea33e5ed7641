"""factmlp from a notebook: a FactSet prints on one line, and ρ takes it directly."""
from __future__ import annotations

import numpy as np
import pytest

from factmlp import decodability, geometries
from factmlp.factsets import FactSet


def test_a_factset_repr_is_one_short_line():
    facts = geometries.make_factset("spherical", 32, 1024, 0)
    text = repr(facts)
    assert text == "FactSet(num_facts=1024, d=32, values=1024, dtype=float64)"
    assert "\n" not in text and len(text) < 80


def test_rho_and_coherence_take_a_factset_as_its_values():
    facts = geometries.make_factset("spherical", 8, 32, 1)
    assert decodability.rho(facts) == decodability.rho(facts.values)
    assert decodability.coherence(facts) == decodability.coherence(facts.values)
    # ρ is the values' property: the same values behind other keys give the same ρ
    other = FactSet(keys=np.roll(facts.keys, 1, axis=0), values=facts.values, mapping=facts.mapping)
    assert decodability.rho(other) == decodability.rho(facts)


def test_rho_still_refuses_what_is_not_a_value_table():
    with pytest.raises(ValueError, match="2-D"):
        decodability.rho(np.zeros(3))
