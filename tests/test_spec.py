"""Sweep specs: cells, overrides, identity, and one-line errors for bad input."""
from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.identity import cell_id
from orchestrator.spec import load_spec


def write(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """
name: t
experiment: capacity
fixed: {geometry: spherical}
grid: {method: [gd, hebbian], d: [8, 16], num_facts: [32]}
"""


def test_grid_zip_seeds_expand(tmp_path):
    spec = load_spec(write(tmp_path, BASE + "zip: {d: [8, 16], num_facts: [10, 20]}\nseeds: [0, 1]\n"
                           .replace("d: [8, 16], num_facts: [32]", "beta: [0.0]")))
    assert len(spec.cells) == 2 * 2 * 2
    assert {(c["d"], c["num_facts"]) for c in spec.cells} == {(8, 10), (16, 20)}
    assert {c["seed"] for c in spec.cells} == {0, 1}


def test_overrides_and_defaults(tmp_path):
    spec = load_spec(write(tmp_path, BASE), ["grid.d=[4,8,12]", "fixed.threshold=0.98", "search.high=128"])
    assert sorted({c["d"] for c in spec.cells}) == [4, 8, 12]
    assert all(c["threshold"] == 0.98 and c["search_high"] == 128 and c["epochs"] == 10_000 for c in spec.cells)


def test_identity_ignores_operational_keys_and_int_float_spelling(tmp_path):
    a = load_spec(write(tmp_path, BASE.replace("spherical}", "spherical, threshold: 1}"), "a.yaml"))
    b = load_spec(write(tmp_path, BASE.replace("spherical}", "spherical, threshold: 1.0}") +
                        "resources: {num_cpus: 2}\nstorage: {root: elsewhere}\n", "b.yaml"))
    assert [cell_id("capacity", c) for c in a.cells] == [cell_id("capacity", c) for c in b.cells]
    c = load_spec(write(tmp_path, BASE, "c.yaml"), ["fixed.seed=1"])
    assert not {cell_id("capacity", x) for x in a.cells} & {cell_id("capacity", x) for x in c.cells}


@pytest.mark.parametrize("text, overrides, key, fragment", [
    (BASE.replace("method", "methd"), [], "grid.methd", "did you mean 'method'"),
    (BASE.replace("spherical", "sphere"), [], "fixed.geometry", "allowed: one of spherical"),
    (BASE.replace("d: [8, 16]", "d: [0]"), [], "grid.d", "allowed: int in [1"),
    (BASE.replace("d: [8, 16]", "d: []"), [], "grid.d", "non-empty list"),
    (BASE.replace("name: t", "name: ../escape"), [], "name", "no path separators"),
    (BASE.replace("experiment: capacity", "experiment: os.system"), [], "experiment", "allowed: capacity"),
    (BASE.replace("spherical", "'${oc.env:HOME}'"), [], "fixed.geometry", "interpolations"),
    (BASE, ["fixed.threshold=1.5"], "fixed.threshold", "(0.0, 1.0]"),
    (BASE, ["search.low=10", "search.high=5"], "search.high", "search_low <= search_high"),
    (BASE, ["nonsense.key=1"], "nonsense.key", "unknown key"),
    ("name: [unclosed", [], "line 1", "malformed YAML"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, text, overrides, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path, overrides)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and fragment in message and "\n" not in message


def test_profiles_switch_scale_with_one_override(tmp_path):
    text = BASE + "profiles:\n  paper:\n    grid: {d: [64, 128]}\n    fixed: {epochs: 10000}\n"
    laptop = load_spec(write(tmp_path, text))
    paper = load_spec(write(tmp_path, text), ["profile=paper"])
    assert sorted({c["d"] for c in laptop.cells}) == [8, 16]
    assert sorted({c["d"] for c in paper.cells}) == [64, 128]
    # Command-line overrides win over the profile.
    assert sorted({c["d"] for c in load_spec(write(tmp_path, text), ["profile=paper", "grid.d=[90]"]).cells}) == [90]
    with pytest.raises(SpecError, match="profile: got 'huge'; allowed: paper"):
        load_spec(write(tmp_path, text), ["profile=huge"])
