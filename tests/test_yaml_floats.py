"""Sweep files read 1e-2 as the float a researcher means, and the docs say so."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spec import load_spec
from orchestrator.sweepyaml import read_yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweep-spec.md"


@pytest.mark.parametrize("text, value", [("1e-2", 0.01), ("1.0e-2", 0.01), ("0.01", 0.01), ("-2E3", -2000.0),
                                         ("12", 12)])
def test_numbers_in_a_sweep_file(text, value):
    got = read_yaml(f"x: {text}".encode())["x"]
    assert got == value and type(got) is type(value)


def test_a_sweep_file_with_1e_minus_2_runs_at_that_learning_rate(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nexperiment: capacity\nfixed: {method: gd, d: 8, num_facts: 8, gd_lr: 1e-2}\n"
                    f"storage: {{root: '{tmp_path}'}}\n")
    assert [c["gd_lr"] for c in load_spec(path).cells] == [0.01]
    assert [c["gd_lr"] for c in load_spec(path, ["fixed.gd_lr=1e-3"]).cells] == [0.001]


def test_the_docs_do_not_say_1e_minus_3_is_rejected():
    text = DOC.read_text()
    assert "`gd_lr: 1e-3`" in text and "rejected (`fixed.gd_lr: got '1e-3'`)" not in text
