"""docs/sweep-spec.md lists every experiment's parameters exactly as the code declares them."""
from pathlib import Path

from orchestrator.experiment import parameter_table
from orchestrator.registry import every

SPEC = Path(__file__).resolve().parents[1] / "docs" / "sweep-spec.md"


def test_parameter_tables_in_the_sweep_spec_match_the_code():
    text = SPEC.read_text()
    generated = text.split("<!-- generated: begin -->", 1)[1].split("<!-- generated: end -->", 1)[0]
    expected = "\n\n".join(parameter_table(experiment) for experiment in every().values())
    assert generated.strip() == expected.strip(), (
        "docs/sweep-spec.md is out of date: regenerate the tables between the generated markers with\n"
        f"{REGENERATE}")


REGENERATE = (".venv/bin/python -c 'from orchestrator.registry import every; from orchestrator.experiment import "
              "parameter_table; print(*map(parameter_table, every().values()), sep=chr(10)*2)'")
