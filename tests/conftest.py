"""Shared fixtures: one Ray instance for the slow tests of a session, and sweep files in tmp folders."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from servers import MlflowServer, MotoServer, free_port

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def pytest_collection_modifyitems(config, items):
    """The fast lane (``-m "not slow"``) starts no Ray, its sweeps run inline: a test that asks for the
    session's Ray must be marked slow (a collection error names it)."""
    unmarked = [item.nodeid for item in items
                if "ray_session" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("tests using ray_session must be marked slow (the fast lane starts no Ray; "
                                "run the sweep inline instead): " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once (about 5 s) on loopback; every runner in the session reuses it. Tests marked slow
    only: the fast lane's sweeps run inline.

    With two logical GPUs, which only tasks that ask for a GPU are given (tests/test_gpu_packing.py).
    """
    from orchestrator.cluster import ensure_ray

    ray = ensure_ray(num_cpus=2, num_gpus=2)
    yield ray
    ray.shutdown()


TINY = """
name: {name}
experiment: capacity
fixed:
  geometry: spherical
  gd_epochs: 300
  gd_lr: 0.02
grid:
  method: [gd, hebbian_whitened]
  d: [8]
  num_facts: [8, 16]
search:
  low: 1
  high: 64
  strategy: kary
  arity: 3
packing:
  probes_per_task: 4
storage:
  root: {root}
"""


@pytest.fixture
def tiny_sweep(tmp_path: Path):
    """A tiny capacity sweep (4 cells) writing under its own results folder."""
    def make(name: str = "tiny", extra: str = "") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(TINY.format(name=name, root=tmp_path / "results") + textwrap.dedent(extra))
        return path
    return make


@pytest.fixture(scope="session")
def shared_tracking(tmp_path_factory) -> str:
    """``tracking.uri=...`` of one MLflow store for the tests that run a sweep but never look inside
    MLflow: a new store runs MLflow's schema migrations (about 3.5 s here), so once, not per test."""
    from orchestrator.tracking import create_sqlite_store
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    create_sqlite_store(path)
    return f"tracking.uri=sqlite:///{path}"


@pytest.fixture
def mlflow_server(tmp_path):
    """Start servers with ``start(port=None)``; every one started is stopped after the test."""
    started = []

    def start(port: int | None = None) -> MlflowServer:
        server = MlflowServer(tmp_path / "server", port or free_port(), uri=f"sqlite:///{tmp_path / 'server.db'}")
        started.append(server)
        return server.wait()
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def one_torch_thread():
    """One torch thread: GD sums in float32 in a fixed reduction order (exact widths), and a tiny matmul
    does not wait for a second OpenMP thread on a busy shared core (10x slower here)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def object_store():
    """One moto S3 server on loopback for the whole session (about 3 s to start); ``root(name)`` is a
    fresh ``s3://`` storage root under its bucket. Skipped, naming why, where moto is not installed."""
    pytest.importorskip("moto", reason="moto[server] (the dev extra) runs the S3-compatible test server")
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    server = MotoServer(free_port()).wait()
    counter = iter(range(10**6))

    class Roots:
        endpoint, conditional_writes, client = server.endpoint, server.conditional_writes, server.client

        @staticmethod
        def root(name: str = "r") -> str:
            return server.root(f"{name}-{next(counter)}")
    yield Roots
    server.stop()


@pytest.fixture
def leases(object_store):
    """The object store, for tests of the lease: skipped when the server ignores conditional writes."""
    if not object_store.conditional_writes:
        pytest.skip("this S3 server ignores If-None-Match/If-Match on PUT: the lease cannot be tested on it")
    return object_store
