"""orchestrator/cell_columns.py: which columns identify a cell and which are results, on real experiments."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from factmlp.experiments.capacity import EXPERIMENT as CAPACITY
from factmlp.experiments.editing import EXPERIMENT as EDITING
from factmlp.options import Options
from orchestrator import cell_columns
from orchestrator.experiment import ParamError


def test_summary_columns_split_into_parameters_and_results():
    assert cell_columns.lead(CAPACITY) == ["method", "geometry", "d", "num_facts"]
    assert cell_columns.results(CAPACITY) == ["min_width", "params", "params_per_fact", "rho", "coherence"]
    assert cell_columns.lead(EDITING) == ["fact_mlp", "width", "edit_fraction", "edit_method"]


def test_keys_add_the_varying_parameters_after_the_declared_ones_once():
    assert cell_columns.keys(CAPACITY, ("d", "seed", "gd_lr")) == ["method", "geometry", "d", "num_facts", "seed",
                                                                    "gd_lr"]
    assert cell_columns.apart(CAPACITY, ()) == ["method"]  # nothing varies: the lead column
    assert cell_columns.apart(CAPACITY, ("seed",)) == ["seed"]
    assert cell_columns.name_keys(CAPACITY, ("seed", "method")) == ["method", "seed"]
    params, metrics = cell_columns.dashboard(CAPACITY, ("seed",))
    assert params[-1] == "seed" and metrics[:2] == ["min_width", "params"] and "bits_per_param" in metrics
    assert not set(params) & set(metrics)


def test_a_row_splits_into_its_set_parameters_and_its_results():
    row = {"cell_id": "c1", "experiment": "capacity", "sweep": "s", "method": "hebbian", "d": 8, "num_facts": 16,
           "gd_lr": float("nan"), "min_width": 5, "invocation_id": "i1"}
    config, summary = cell_columns.split(CAPACITY, row)
    assert config == {"method": "hebbian", "d": 8, "num_facts": 16}  # another method's option (NaN) left out
    assert summary == {"min_width": 5, "invocation_id": "i1"}


@dataclass(frozen=True)
class Demo(Options):
    pass


def test_a_bad_option_is_the_contracts_param_error_with_its_key():
    with pytest.raises(ParamError) as caught:
        Demo.of({"nope": 1})
    assert caught.value.key == "nope" and "allowed" in caught.value.message
    with pytest.raises(ParamError) as caught:  # through resolve, with the method's prefix
        CAPACITY.resolve({"method": "gd", "d": 8, "num_facts": 16, "gd_lr": -1.0})
    assert caught.value.key == "gd_lr"
