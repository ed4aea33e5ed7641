"""Credentials in `tracking.uri` (`http://user:password@host`) are never shown or stored: not on stdout
or stderr, not in the lock file, the invocations table, the report, nor MLflow's tags and artifacts. A
server's credentials go to the environment MLflow reads (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.lock import SweepLock
from orchestrator.provenance import new_invocation
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import Tracker, default_uri
from servers import free_port

SECRET = "hunter2-s3cr3t"
SYNTHETIC = """
name: secret
experiment: synthetic
fixed: {{num_probes: 2}}
grid: {{seed: [0, 1]}}
storage: {{root: '{root}'}}
"""


def written(folder: Path) -> list[str]:
    """Files under ``folder`` whose bytes hold the secret."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_credentials_in_the_tracking_uri_are_never_shown_or_stored(tmp_path, capsys, caplog, monkeypatch):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the server is down: one try
    path = tmp_path / "secret.yaml"
    path.write_text(SYNTHETIC.format(root=tmp_path / "results"))
    override = f"tracking.uri=http://alice:{SECRET}@127.0.0.1:{free_port()}"  # a server that is down
    monkeypatch.setattr(sys, "argv", ["factsweep", "run", str(path), override, "--inline"])
    with caplog.at_level(logging.WARNING):
        assert main(sys.argv[1:]) == 0
    out, err = capsys.readouterr()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "2/2 cells done" in out and "http://***@127.0.0.1" in out, out
    assert SECRET not in out + err + logged, (out, err, logged)
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") == SECRET  # where MLflow reads it, in this process only
    assert "***" in str(Store(tmp_path / "results").load("invocations", "secret")["overrides"].tolist())
    with SweepLock(tmp_path / "results", "secret"):  # what a second driver (or anyone) reads while it is held
        assert "***@127.0.0.1" in (tmp_path / "results" / "locks" / "secret.lock").read_text()
        assert not written(tmp_path / "results")
    assert not written(tmp_path / "results"), "the results folder holds the password"

    # What goes to MLflow about an invocation: its tags and artifacts (a sqlite store, to read them back).
    spec = load_spec(path, [override])
    root = tmp_path / "view"
    tracker = Tracker(default_uri(root), "secret", root)
    tracker.start(spec, new_invocation(spec, command="run", address=None))
    tracker.finish()
    assert not tracker.failed
    run = MlflowClient(default_uri(root)).get_run(tracker.parent_id)
    assert SECRET not in str(run.data.tags) and "***" in run.data.tags["factsweep.overrides"]
    assert not written(root), "an MLflow artifact holds the password"


def test_a_bad_uri_with_credentials_is_refused_without_showing_them(tmp_path, capsys):
    path = tmp_path / "secret.yaml"
    path.write_text(SYNTHETIC.format(root=tmp_path / "results"))
    assert main(["plan", str(path), f"tracking.uri=ftp://alice:{SECRET}@host/x"]) == 2
    err = capsys.readouterr().err
    assert "tracking.uri" in err and SECRET not in err and "ftp://***@host" in err, err
