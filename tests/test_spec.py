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
    assert all(c["threshold"] == 0.98 and c["search_high"] == 128 for c in spec.cells)
    assert all(c["gd_epochs"] == 10_000 for c in spec.cells if c["method"] == "gd")


def test_a_cell_carries_only_its_own_methods_options_written_flat_or_nested(tmp_path):
    """encoder_decoder options given in fixed do not apply to (nor change the ids of) the gd cells."""
    plain = load_spec(write(tmp_path, BASE.replace("hebbian", "encoder_decoder"), "plain.yaml"))
    flat = load_spec(write(tmp_path, BASE.replace("hebbian", "encoder_decoder").replace(
        "fixed: {geometry: spherical}", "fixed: {geometry: spherical, encoder_decoder_bucket_size: 8}"), "flat.yaml"))
    nested = load_spec(write(tmp_path, BASE.replace("hebbian", "encoder_decoder").replace(
        "fixed: {geometry: spherical}", "fixed: {geometry: spherical, encoder_decoder: {bucket_size: 8}}"),
        "nested.yaml"))
    assert flat.cells == nested.cells
    for cell in flat.cells:
        assert ("encoder_decoder_bucket_size" in cell) == (cell["method"] == "encoder_decoder")
        assert not any(k.startswith("gd_") for k in cell) or cell["method"] == "gd"
    ids = lambda spec, method: {cell_id("capacity", c) for c in spec.cells if c["method"] == method}
    assert ids(flat, "gd") == ids(plain, "gd") and not ids(flat, "encoder_decoder") & ids(plain, "encoder_decoder")
    grid = load_spec(write(tmp_path, BASE.replace("hebbian", "encoder_decoder"), "grid.yaml"),
                     ["grid.encoder_decoder.bucket_size=[4,8]"])
    assert sorted(c.get("encoder_decoder_bucket_size", 0) for c in grid.cells) == [0, 0, 4, 4, 8, 8]


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
    (BASE, ["fixed.gd.epoch=5"], "fixed.gd_epoch", "did you mean 'gd_epochs'"),
    (BASE, ["fixed.gd_epochs=5", "fixed.gd.epochs=6"], "fixed.gd_epochs", "given twice"),
    (BASE, ["fixed.ntk_degree=-1"], "fixed.ntk_degree", "allowed: int in [0, 64]"),
    (BASE.replace("hebbian", "encoder_decoder"), ["fixed.encoder_decoder.units_per_bucket=2"],
     "fixed.encoder_decoder_units_per_bucket", "solve='global'"),
    ("name: [unclosed", [], "line 1", "malformed YAML"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, text, overrides, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path, overrides)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and fragment in message and "\n" not in message


def test_profiles_switch_scale_with_one_override(tmp_path):
    text = BASE + "profiles:\n  paper:\n    grid: {d: [64, 128]}\n    fixed: {gd_epochs: 10000}\n"
    laptop = load_spec(write(tmp_path, text))
    paper = load_spec(write(tmp_path, text), ["profile=paper"])
    assert sorted({c["d"] for c in laptop.cells}) == [8, 16]
    assert sorted({c["d"] for c in paper.cells}) == [64, 128]
    # Command-line overrides win over the profile.
    assert sorted({c["d"] for c in load_spec(write(tmp_path, text), ["profile=paper", "grid.d=[90]"]).cells}) == [90]
    with pytest.raises(SpecError, match="profile: got 'huge'; allowed: paper"):
        load_spec(write(tmp_path, text), ["profile=huge"])
