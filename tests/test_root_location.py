"""One reading of ``storage.root`` everywhere (issue 34.9), and a results folder that owns its MLflow
artifacts wherever it is copied or moved (34.4). Tiny stores and one sqlite MLflow store, no Ray."""
from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.location import BadRoot
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import Tracker, default_uri

SWEEP = """
name: s
experiment: synthetic
grid: {seed: [0]}
"""


def test_a_root_with_percent_or_question_mark_is_a_plain_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "r%41?x=1#y"
    Store(root).append("probes", "s", [{"probe_id": "a"}])
    tracker = Tracker(default_uri(root), "s", root)
    report = tmp_path / "report.md"
    report.write_text("# r")
    tracker.log_report([report])
    assert not tracker.failed
    assert (root / "mlflow.db").is_file() and list((root / "mlartifacts").rglob("report.md"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r%41?x=1#y", "report.md"]  # nothing beside it


@pytest.mark.parametrize("root", ["~/res", "~", "file:res", "file:///tmp/res", "FILE:/tmp/res"])
def test_tilde_and_file_roots_are_refused_in_one_line(tmp_path, monkeypatch, capsys, root):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP)
    with pytest.raises(SpecError) as refused:
        load_spec(path, [f"storage.root={root}"])
    assert "storage.root" in str(refused.value) and "allowed" in str(refused.value) and "\n" not in str(refused.value)
    for make in (Store, default_uri):
        with pytest.raises(BadRoot, match="storage.root.*allowed"):
            make(root)
    capsys.readouterr()
    assert main(["query", "--root", root, "select 1"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written


@pytest.mark.parametrize("how", ["copy", "move"])
def test_a_copied_or_moved_folder_owns_its_artifacts(tmp_path, how):
    """Artifacts logged after a copy or move go inside the new folder; the first folder is left as it was."""
    import shutil
    first, second = tmp_path / "first", tmp_path / "second"
    report = tmp_path / "report.md"
    report.write_text("# one")
    Tracker(default_uri(first), "s", first).log_report([report])
    before = sorted(p.relative_to(first) for p in first.rglob("*") if "mlflow.db" not in p.name)
    (shutil.copytree if how == "copy" else shutil.move)(first, second)
    (tmp_path / "figure.svg").write_text("<svg/>")
    tracker = Tracker(default_uri(second), "s", second)
    tracker.log_report([tmp_path / "figure.svg"])
    assert not tracker.failed
    assert list((second / "mlartifacts").rglob("figure.svg")) and list((second / "mlartifacts").rglob("report.md"))
    if how == "copy":
        assert sorted(p.relative_to(first) for p in first.rglob("*") if "mlflow.db" not in p.name) == before
    else:
        assert not first.exists()
