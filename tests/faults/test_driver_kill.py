"""kill -9 of the driver at random moments of a real sweep: nothing finished is lost or redone, on a local
folder and on an object store (a real S3-compatible server on loopback; fewer kills there)."""
from __future__ import annotations

import pytest

import contextlib
import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG, default_uri

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

KILLS = 5
SWEEP = """
name: {name}
experiment: capacity
fixed: {{geometry: spherical, gd_epochs: 3000, gd_lr: 0.02}}
grid: {{method: [gd], d: [8], num_facts: [12, 24, 36, 48]}}  # GD probes take ~0.7 s: a kill lands mid-sweep
search: {{low: 1, high: 96, strategy: binary, predict: false}}  # the same probes in every run
packing: {{probes_per_task: 1}}
storage: {{root: '{root}'}}
"""


def raw_probe_rows(root, sweep: str) -> pd.DataFrame:
    """Every probe row in every fragment, before any de-duplication."""
    parts = [pq.read_table(pa.BufferReader(p.read_bytes())).to_pandas() for p in Store(root).fragments("probes", sweep)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["probe_id"])


def _descendants(pid: int) -> set[int]:
    """pid and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        found.add(p := todo.pop())
        todo.extend(children.get(p, []))
    return found


def _listening_addresses(pids: set[int]) -> set[str]:
    """Local IPs of the TCP sockets these processes listen on (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if (target := os.readlink(fd)).startswith("socket:["):
                        inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN; addresses are little-endian 32-bit words
                raw = cols[1].split(":")[0]
                packed = b"".join(bytes.fromhex(raw[i:i + 8])[::-1] for i in range(0, len(raw), 8))
                ip = ipaddress.ip_address(packed)
                found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory) -> tuple[int, Path]:
    """The sweep run once without kills (shared by both backends): its probe count and results root."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "reference.yaml"
    path.write_text(SWEEP.format(name="killed", root=folder / "reference"))
    return run_sweep(load_spec(path), progress=False).probes_run, folder / "reference"


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_kill_dash_nine_at_random_moments(reference, tmp_path, request, monkeypatch, backend):
    started = time.perf_counter()
    total, reference_root = reference

    path = tmp_path / "killed.yaml"
    results = tmp_path / "results" if backend == "folder" else request.getfixturevalue("leases").root("killed")
    tracking = default_uri(tmp_path / "results")
    # An object store has no sqlite beside it: the same file, named. A killed driver's lease is free once
    # unrenewed for FACTSWEEP_LEASE_SECONDS; each driver waits that out first.
    path.write_text(SWEEP.format(name="killed", root=results) + (f"tracking: {{uri: '{tracking}'}}\n" * (backend == "s3")))
    kills, lease = (KILLS, 0.0) if backend == "folder" else (1, 1.5)  # one kill there: each costs a lease expiry
    monkeypatch.setenv("FACTSWEEP_LEASE_SECONDS", str(lease or 60))
    rng = random.Random(1234)
    # Random moments: after a random, growing number of recorded probes, plus a random fraction of a second.
    marks = sorted(rng.sample(range(1, total - 3), kills))  # leave work a kill can interrupt
    # The CLI's own loopback setting, not the one conftest sets for the in-process Ray.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"} | {"PYTHONUNBUFFERED": "1"}
    recorded, listening = [], set()
    for mark in marks:
        time.sleep(lease and lease + 1.2)
        driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while len(raw_probe_rows(results, "killed")) < mark and driver.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.2))
        if not listening:  # once: reading /proc takes longer than the rest of a late kill's window
            listening = _listening_addresses(_descendants(driver.pid))
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        with contextlib.suppress(ProcessLookupError):  # Ray fate-shares with its driver; end any straggler
            os.killpg(driver.pid, signal.SIGKILL)
        raw = raw_probe_rows(results, "killed")
        recorded.append(len(raw))
        assert raw["probe_id"].is_unique, "a finished probe was recorded twice"
        assert len(raw) < total, "the kill came after the sweep had finished"
        assert Store(results).connect().execute("select count(*) from probes").fetchone()[0] == len(raw)
    assert listening and listening <= {"127.0.0.1"}, f"the sweep's Ray listened on {listening}"
    before = len(raw_probe_rows(results, "killed"))
    time.sleep(lease and lease + 1.2)
    final = run_sweep(load_spec(path), progress=False)
    assert final.cells_done == 4
    store, expected = Store(results), Store(reference_root)
    probes = store.load("probes", "killed")
    assert len(probes) == before + final.probes_run and probes["probe_id"].is_unique
    key = ["method", "num_facts", "width"]
    got = probes.set_index(key)["accuracy"].sort_index()
    want = expected.load("probes", "killed").set_index(key)["accuracy"].sort_index()
    assert got.index.equals(want.index) and (got == want).all()
    cells = store.load("cells", "killed").set_index(["method", "num_facts"])["min_width"].sort_index()
    assert cells.equals(expected.load("cells", "killed").set_index(["method", "num_facts"])["min_width"].sort_index())
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("killed")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(store.load("cells", "killed")["cell_id"])
    assert all(r.info.status == "FINISHED" and "min_width" in r.data.metrics for r in runs)
    # One sweep run for every invocation: left RUNNING by each kill, closed KILLED by the next run,
    # FINISHED by the last; the invocations table says how each driver ended.
    sweep_runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert [r.info.status for r in sweep_runs] == ["FINISHED"]
    states = store.load("invocations", "killed")["state"].tolist()
    assert states == ["killed"] * (len(states) - 1) + ["finished"], states  # each kill closed by the next run
    print(f"\ndriver kill: {kills} kill -9 ({backend}) of the driver, probes recorded at each kill {recorded} of {total}; "
          f"final run ran {final.probes_run} = {total} - {before}; probes recorded twice 0; MLflow cell runs "
          f"{len(runs)} for {len(cells)} cells; {time.perf_counter() - started:.0f}s")

