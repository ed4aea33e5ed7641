"""docs/sweep-spec.md lists every experiment's parameters exactly as the code declares them."""
from pathlib import Path

from factmlp.experiments import REGISTRY
from factmlp.experiments.base import parameter_table

SPEC = Path(__file__).resolve().parents[1] / "docs" / "sweep-spec.md"


def test_parameter_tables_in_the_sweep_spec_match_the_code():
    text = SPEC.read_text()
    generated = text.split("<!-- generated: begin -->", 1)[1].split("<!-- generated: end -->", 1)[0]
    expected = "\n\n".join(parameter_table(REGISTRY[kind]) for kind in sorted(REGISTRY))
    assert generated.strip() == expected.strip(), (
        "docs/sweep-spec.md is out of date: regenerate the tables between the generated markers with\n"
        ".venv/bin/python -c 'from factmlp.experiments import REGISTRY; from factmlp.experiments.base import "
        "parameter_table; print(*(parameter_table(REGISTRY[k]) for k in sorted(REGISTRY)), sep=chr(10)*2)'")
