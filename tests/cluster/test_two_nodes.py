"""A real two-node Ray cluster on loopback: tasks land on both nodes and results equal an embedded run."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

HARNESS = Path(__file__).with_name("two_nodes.py")


def can_make_network_namespace() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not can_make_network_namespace(), reason="needs unshare --net (root) for an isolated loopback")
def test_two_node_cluster_matches_embedded(ray_session, tiny_sweep, tmp_path):
    cluster_sweep = tiny_sweep("cluster", "resources: {num_cpus: 1}\n")
    ray_dir = tempfile.mkdtemp(prefix="fsr", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    try:
        command = f"ip link set lo up && exec {sys.executable} {HARNESS} {cluster_sweep} {ray_dir}"
        done = subprocess.run(["unshare", "--net", "sh", "-c", command], cwd=Path(__file__).parents[2],
                              capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    embedded_path = tiny_sweep("embedded")
    embedded_path.write_text(embedded_path.read_text().replace(str(tmp_path / "results"), str(tmp_path / "embedded")))
    run_sweep(load_spec(embedded_path), progress=False)

    cluster = Store(tmp_path / "results")
    probes = cluster.load("probes", "cluster")
    assert probes["node_id"].nunique() == 2, "tasks did not land on both nodes"
    key = ["method", "d", "num_facts"]
    on_cluster = cluster.load("cells", "cluster").set_index(key)["min_width"].sort_index()
    embedded = Store(tmp_path / "embedded").load("cells", "embedded").set_index(key)["min_width"].sort_index()
    assert on_cluster.equals(embedded) and len(on_cluster) == 4
