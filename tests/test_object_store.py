"""The record on an object store: the lease (conditional writes on a real S3-compatible server), epochs
that outrank clocks, transient errors that stop a sweep in one line without quarantining anything, the
refusal of a driver away from the Ray head, and storage.root's one-line errors."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import types

import pytest

from orchestrator.cli import main
from orchestrator.cluster import check_driver_placement
from orchestrator.errors import SpecError, Unavailable
from orchestrator.lease import LeaseLost, ObjectLease, sweep_lease
from orchestrator.location import open_root
from orchestrator.lock import SweepLocked
from orchestrator.spec import load_spec
from orchestrator.store import StorageError, Store
from servers import free_port
from sweep_files import synthetic_sweep



def test_storage_root_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    synthetic_sweep(path, "bad", "ftp://host/x")
    with pytest.raises(SpecError, match=r"storage\.root: got 'ftp://host/x'; allowed: a folder path, s3://") as e:
        load_spec(path)
    assert "\n" not in str(e.value)
    synthetic_sweep(path, "bad", "s3://bucket/x")
    with pytest.raises(SpecError, match=r"tracking\.uri: got null with storage\.root 's3://bucket/x'; allowed: "):
        load_spec(path)
    assert load_spec(path, ["tracking.uri=http://127.0.0.1:5000"]).results_root == "s3://bucket/x"


def test_a_newer_epoch_wins_whatever_the_clocks_say(tmp_path):
    """Driver 2 (epoch 2) rewrote a probe; driver 1, paused and on a host whose clock runs ahead, writes
    its stale row later: reads and SQL still keep driver 2's."""
    Store(tmp_path, epoch=2).append("probes", "s", [{"probe_id": "p", "x": 2, "recorded_at": 100.0}])
    Store(tmp_path, epoch=1).append("probes", "s", [{"probe_id": "p", "x": 1, "recorded_at": 999.0}])
    store = Store(tmp_path)
    store.append("probes", "s", [{"probe_id": "q", "x": 0}])  # rows of no lease count as epoch 0
    assert store.load("probes", "s").set_index("probe_id")["x"].to_dict() == {"p": 2, "q": 0}
    assert store.connect().execute("select x from probes where probe_id = 'p'").fetchall() == [(2,)]
    store.compact("probes", "s")
    assert store.load("probes", "s").set_index("probe_id")["x"].to_dict() == {"p": 2, "q": 0}


@pytest.mark.slow
def test_lease_refuses_a_second_driver_and_is_taken_over_after_expiry(leases):
    root = leases.root("lease")
    location = open_root(root)
    with ObjectLease(location, "s", ttl=2) as first:
        assert first.epoch == 1
        with pytest.raises(SweepLocked) as refused:
            ObjectLease(location, "s", ttl=2).__enter__()
        line = str(refused.value)
        assert "\n" not in line and f"pid {os.getpid()} on host {socket.gethostname()}" in line and "lease s3://" in line
        time.sleep(1.5)  # renewed every ttl/3: still held
        with pytest.raises(SweepLocked):
            ObjectLease(location, "s", ttl=2).__enter__()
    with sweep_lease(root, "s") as second:  # released: taken at once, with the next epoch
        assert second.epoch == 2

    # A driver that stops renewing (paused, cut off) is taken over after its time to live ...
    paused = ObjectLease(location, "s", ttl=1.5).__enter__()
    paused._stop.set()
    paused._renewer.join()
    time.sleep(2.6)  # Last-Modified has a resolution of one second
    with ObjectLease(location, "s", ttl=30) as third:
        assert third.epoch == 4
        # ... and when it wakes, its next renewal fails and its next write stops it, in one line.
        paused._stop.clear()
        waking = threading.Thread(target=paused._renew)
        waking.start()
        waking.join(timeout=10)
        with pytest.raises(LeaseLost, match="took it over") as lost:
            Store(root, epoch=paused.epoch, guard=paused).append("probes", "s", [{"probe_id": "p"}])
        assert "\n" not in str(lost.value)
    assert Store(root).load("probes", "s", missing_ok=True).empty


@pytest.mark.slow
def test_an_unreachable_store_stops_in_one_line_and_quarantines_nothing(object_store, tmp_path, caplog, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr("orchestrator.location.RETRIES", 2)  # each retry waits; two show the path
    dead = f"s3://bucket/x?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    with pytest.raises(StorageError) as e:
        Store(dead).append("probes", "s", [{"probe_id": "p"}])
    assert "\n" not in str(e.value) and "the object store did not answer" in str(e.value)

    root = object_store.root("transient")
    store = Store(root)
    store.append("probes", "s", [{"probe_id": "p"}])
    location = open_root(root)

    def cut_off(key):
        raise OSError("When reading 'probes/...': AWS Error NETWORK_CONNECTION during GetObject operation")
    monkeypatch.setattr(type(location), "read_bytes", lambda self, key: cut_off(key))
    with caplog.at_level(logging.WARNING, logger="factsweep"), pytest.raises(StorageError) as e:
        Store(root).load("probes", "s")
    assert "NETWORK_CONNECTION" in str(e.value) and not caplog.records
    monkeypatch.undo()
    monkeypatch.setattr("orchestrator.location.RETRIES", 2)
    assert store.location.files("quarantine", "*/*/*") == [] and len(Store(root).load("probes", "s")) == 1

    path = tmp_path / "down.yaml"
    synthetic_sweep(path, "down", dead, extra="tracking: {uri: 'http://127.0.0.1:1'}\n")
    assert main(["run", str(path), "--inline"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("factsweep: error: results: cannot reach s3://bucket/x/"), err


def fake_ray(head_ip: str, here: str, node: str = "worker"):
    """What check_driver_placement asks of Ray: the nodes, this host's address, the node it is attached to."""
    nodes = [{"Alive": True, "NodeManagerAddress": head_ip, "NodeID": "head", "Resources": {"node:__internal_head__": 1.0}},
             {"Alive": True, "NodeManagerAddress": "10.0.0.7", "NodeID": "worker", "Resources": {"CPU": 8}}]
    context = types.SimpleNamespace(get_node_id=lambda: node)
    return types.SimpleNamespace(nodes=lambda: nodes, util=types.SimpleNamespace(get_node_ip_address=lambda: here),
                                 get_runtime_context=lambda: context)


def test_a_driver_away_from_the_head_with_a_local_root_is_refused(tmp_path):
    with pytest.raises(Unavailable) as e:
        check_driver_placement(fake_ray("10.0.0.1", "10.0.0.7"), tmp_path / "results")
    line = str(e.value)
    assert "\n" not in line and "the Ray head is 10.0.0.1" in line and "s3://BUCKET/PREFIX" in line
    assert line.startswith(f"storage.root: '{tmp_path / 'results'}' is a folder on this host")
    check_driver_placement(fake_ray("10.0.0.1", "10.0.0.1"), tmp_path / "results")  # on the head
    check_driver_placement(fake_ray("10.0.0.1", "192.168.0.1", node="head"), tmp_path / "results")  # another NIC of it
    check_driver_placement(fake_ray("10.0.0.1", "10.0.0.7"), "s3://bucket/results")  # shared record


def test_the_lease_lists_its_drivers_cells_and_a_refusal_names_the_shared_ones(leases):
    """An object-store lease admits one driver per sweep; it lists the holder's cells, so a refusal says
    truly whether the second driver's cells overlap (before: "would run the same probes" for other seeds)."""
    location = open_root(leases.root("cells"))
    with ObjectLease(location, "s", ttl=30, cells={"a" * 16: "seed=0", "b" * 16: "seed=1"}):
        with pytest.raises(SweepLocked) as other:
            ObjectLease(location, "s", ttl=30, cells={"c" * 16: "seed=2"}).__enter__()
        with pytest.raises(SweepLocked) as shared:
            ObjectLease(location, "s", ttl=30, cells={"b" * 16: "seed=1", "c" * 16: "seed=2"}).__enter__()
    assert "on 2 other cell(s), none of these" in str(other.value) and "same probes" not in str(other.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()} since " in str(shared.value)
    assert "on 1 of these cells (seed=1) (lease s3://" in str(shared.value), shared.value
