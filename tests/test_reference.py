"""Every sweep in sweeps/ (the ten studies, the quickstart among them) has a committed reference
report, made by the current schema from exactly the cells its sweep file defines, and the
README's claims table links only to committed files."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.identity import SCHEMA_VERSION, cell_id
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))  # the quickstart too


@pytest.mark.parametrize("study", STUDIES)
def test_each_study_has_a_committed_report_of_its_own_cells(study):
    folder = REPO / "results" / "reference" / study
    report = (folder / f"{study}.md").read_text()
    cells = pd.read_csv(folder / f"{study}-cells.csv")
    assert (cells["schema_version"] == SCHEMA_VERSION).all(), "made by an older schema: run `make reference`"
    spec = load_spec(REPO / "sweeps" / f"{study}.yaml")
    assert set(cells["cell_id"]) == {cell_id(spec.experiment.name, c) for c in spec.cells}, (
        "the committed cells are not the sweep file's: run `make reference`")
    for link in re.findall(r"\]\(([^)#]+)\)", report):  # figures, PDFs and the CSV beside the report
        assert (folder / link).is_file(), f"{study}.md links to a missing {link}"


@pytest.mark.parametrize("study", STUDIES)
def test_each_committed_study_was_recorded_by_committed_code(study):
    """A committed number names the commit that made it: no cell of a `-dirty` code version, and the
    probes behind the cells are committed beside them."""
    folder = REPO / "results" / "reference" / study
    cells = pd.read_csv(folder / f"{study}-cells.csv")
    dirty = sorted({v for v in cells["code_version"].astype(str) if v.endswith("-dirty")})
    assert not dirty, f"{study}: cells recorded by uncommitted code ({', '.join(dirty)}): run `make reference`"
    probes = pd.read_csv(folder / f"{study}-probes.csv")
    assert set(probes["cell_id"]) == set(cells["cell_id"]), f"{study}: the probes CSV does not cover its cells"


def test_the_readme_links_only_to_committed_files():
    readme = (REPO / "README.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)#\s]+)", readme) if not link.startswith("http")]
    assert links
    for link in links:
        assert (REPO / link).exists(), f"README links to {link}, which is not in the repository"
