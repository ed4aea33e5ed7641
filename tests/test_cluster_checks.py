"""Ray waits rather than fails: a task no node can run is queued forever, an address nobody answers is
retried for minutes. factsweep checks both first: one line, exit 2 for a resource no node has, exit 1
within 30 s for a cluster that cannot be reached."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from servers import free_port

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: 2}}
resources: {{num_cpus: {cpus}, num_gpus: {gpus}}}
cluster: {{address: {address}}}
storage: {{root: '{root}'}}
"""
REPO = Path(__file__).resolve().parents[1]


def sweep(tmp_path: Path, name: str, cpus=1, gpus=0, address="null") -> Path:
    """A sweep file with its own results folder, ``<tmp_path>/<name>``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(SYNTHETIC.format(name=name, cpus=cpus, gpus=gpus, address=address, root=tmp_path / name))
    return path


@pytest.mark.parametrize("cpus, gpus, key, has", [
    (1000, 0, "resources.num_cpus", "got 1000, but no node of the cluster can run such a task (the largest of its "
                                    "1 nodes has 2); allowed: at most 2 CPUs per task on this cluster"),
    (1, 3, "resources.num_gpus", "got 3, but no node of the cluster can run such a task (the largest of its "
                                 "1 nodes has 2); allowed: at most 2 GPUs per task on this cluster"),
], ids=["num_cpus_1000", "num_gpus_beyond_the_node"])
@pytest.mark.slow  # the session's Ray: the fast lane starts none
def test_a_task_no_node_can_run_is_refused(ray_session, tmp_path, capsys, cpus, gpus, key, has):
    """The test session's Ray has one node with 2 CPUs and 2 logical GPUs."""
    path = sweep(tmp_path, "greedy", cpus=cpus, gpus=gpus)
    assert main(["run", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"factsweep: error: {path}: {key}: {has}\n"
    assert not list((tmp_path / "greedy").rglob("*.parquet")) and not (tmp_path / "greedy" / "mlflow.db").exists()


@pytest.mark.slow
def test_an_unreachable_cluster_fails_within_30_seconds(tmp_path):
    """Real CLI processes, side by side: an address nobody listens on (given as --address, and in RAY_ADDRESS,
    which Ray reads), and `auto` where no cluster runs
    (a private PID namespace hides this machine's other Ray instances; RAY_TMPDIR hides their address file)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "RAY_TMPDIR": str(tmp_path / "no-ray")}
    (tmp_path / "no-ray").mkdir()
    port = free_port()
    cases = {"refused": ([], ["run", str(sweep(tmp_path, "refused")), "--address", f"127.0.0.1:{port}"],
                         f"factsweep: error: --address: cannot reach 127.0.0.1:{port} (Connection refused); "),
             # Ray itself reads RAY_ADDRESS: the same check, naming the variable (before: minutes of retries)
             "env": ([], ["run", str(sweep(tmp_path, "env"))],
                     f"factsweep: error: RAY_ADDRESS: cannot reach 127.0.0.1:{port} (Connection refused); ")}
    isolate = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") and subprocess.run([*isolate, "true"], capture_output=True).returncode == 0:
        cases["auto"] = (isolate, ["run", str(sweep(tmp_path, "auto", address="auto"))],
                         "factsweep: error: cluster.address: no running Ray cluster found at 'auto'; ")
    started = time.monotonic()
    procs = {name: subprocess.Popen([*prefix, sys.executable, "-m", "orchestrator.cli", *argv],
                                    env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"} if name == "env" else env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (prefix, argv, _) in cases.items()}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            seconds = time.monotonic() - started
            assert proc.returncode == 1 and out == "", (name, proc.returncode, out, err)
            assert len(err.splitlines()) == 1 and err.startswith(cases[name][2]), (name, err)
            assert seconds < 30, f"{name}: {seconds:.0f}s"
            print(f"\n{name}: {seconds:.1f}s: {err.strip()}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if "auto" not in cases:
        pytest.skip("no user and PID namespaces here: `auto` would find this machine's other Ray instances")
