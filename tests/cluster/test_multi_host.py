"""Two "hosts" drive one sweep on one object-store root: separate processes with private working
folders, homes and temporary folders, sharing nothing but a real S3-compatible server on loopback.
The second driver is refused while the first holds the lease, takes over once the first is killed
with kill -9 and its lease has expired, and the store ends with every probe exactly once."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.store import Store
from sweep_files import synthetic_sweep

pytestmark = pytest.mark.slow  # real servers, processes and kills

REPO = Path(__file__).resolve().parents[2]
TTL = 3


def host(folder: Path) -> dict:
    """A private working folder, home and temporary folder: nothing on disk is shared between hosts."""
    (folder / "tmp").mkdir(parents=True)
    return {**os.environ, "HOME": str(folder), "TMPDIR": str(folder / "tmp"), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "FACTSWEEP_LEASE_SECONDS": str(TTL)}


host_env: dict[Path, dict] = {}


def start(sweep: Path, folder: Path, tracking: str) -> subprocess.Popen:
    env = host_env.get(folder) or host_env.setdefault(folder, host(folder))
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(sweep), tracking, "--inline"],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_two_hosts_one_sweep_one_lease(leases, shared_tracking, tmp_path):
    root = leases.root("hosts")
    sweep = tmp_path / "hosts.yaml"
    synthetic_sweep(sweep, "hosts", root, probes=6, sleep=1.0, probes_per_task=1)
    a_home, b_home = tmp_path / "host-a", tmp_path / "host-b"
    store = Store(root)
    first = start(sweep, a_home, shared_tracking)
    try:
        while len(store.load("probes", "hosts", missing_ok=True)) < 2 and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        second = start(sweep, b_home, shared_tracking)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1 and out == "" and len(err.splitlines()) == 1, (second.returncode, out, err)
        assert re.search(rf"is being run by pid {first.pid} on host \S+ since .* \(lease s3://\S+/locks/hosts\.lease", err), err
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # kill -9 of the first host's driver, mid-sweep
        first.wait()
    recorded = len(store.load("probes", "hosts"))
    assert 2 <= recorded < 12

    refusals, deadline = 0, time.time() + 60
    while True:  # refused until the dead driver's lease has gone unrenewed for its time to live
        second = start(sweep, b_home, shared_tracking)
        out, err = second.communicate(timeout=120)
        if second.returncode == 0 or time.time() > deadline:
            break
        assert second.returncode == 1 and f"pid {first.pid}" in err and len(err.splitlines()) == 1, err
        refusals += 1
        time.sleep(0.5)
    assert second.returncode == 0, (out, err)
    assert f"2/2 cells done, {12 - recorded} probes run (0 failed)" in out, out

    probes = store.load("probes", "hosts")
    assert len(probes) == 12 and probes["probe_id"].is_unique and (probes["status"] == "ok").all()
    by_epoch = probes.groupby("lease_epoch").size().to_dict()
    assert by_epoch == {1: recorded, 2: 12 - recorded}, by_epoch  # each driver's rows carry its lease epoch
    invocations = store.load("invocations", "hosts")
    assert sorted(invocations["state"]) == ["finished", "killed"]  # the killed driver's closed by the next run
    assert len(store.load("cells", "hosts")) == 2
    print(f"\nmulti-host: host A killed after {recorded} probes; host B refused while the lease was live, "
          f"{refusals} more refusal(s) until it expired, then ran {12 - recorded}: 12 probes, each once")
