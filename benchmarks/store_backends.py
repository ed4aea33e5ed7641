"""The record on a local folder against an object store: appending and reading 10,000 probe rows, and a
no-op resume of a 500-cell sweep (goal: at most 5 s on the object store).

- append: 10,000 probe rows of a capacity-like shape, in appends of --rows-per-append rows (8: the
  default probes per task; the driver appends once per finished task); ms per probe row;
- read: ``Store.load`` of those rows from the appended fragments, then after compaction;
- resume: a 500-cell synthetic sweep run once (not timed; MLflow on a local sqlite), then the same
  ``run_sweep`` again, which finds nothing to do: lease, checks, plan, its invocation rows, compaction.

The object store is moto's S3 server started here on 127.0.0.1 (pip install 'moto[server]'), or any
S3-compatible server with --endpoint HOST:PORT (credentials from AWS_*; --bucket must exist).

    .venv/bin/python benchmarks/store_backends.py [--rows 10000] [--cells 500] [--endpoint HOST:PORT]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.runner import run_sweep  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402
from orchestrator.store import Store  # noqa: E402

SWEEP = """
name: resume
experiment: synthetic
fixed: {{num_probes: 1}}
grid: {{seed: {seeds}}}
packing: {{probes_per_task: 1}}
tracking: {{uri: 'sqlite:///{tracking}'}}
storage: {{root: '{root}'}}
"""


def probe_rows(n: int) -> list[dict]:
    return [{"cell_id": f"c{i // 20:05d}", "probe_id": f"p{i:06d}", "experiment": "capacity", "method": "gd",
             "geometry": "spherical", "d": 64, "num_facts": 1024, "seed": i % 5, "width": 100 + i % 97,
             "params": 19200 + i, "accuracy": 0.5 + (i % 50) / 100, "margin_min": 0.01 * (i % 7), "status": "ok",
             "error": None, "node_id": "a" * 56, "gpu_ids": "", "task_seconds": 0.7, "invocation_id": "i" * 16,
             "code_version": "0123456789ab"} for i in range(n)]


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return server, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise SystemExit("moto server did not start")


def bench(label: str, root, rows: list[dict], per_append: int, cells: int, scratch: Path) -> dict:
    store = Store(root)
    start = time.perf_counter()
    for i in range(0, len(rows), per_append):
        store.append("probes", "bench", rows[i:i + per_append])
    append_s = time.perf_counter() - start
    start = time.perf_counter()
    assert len(store.load("probes", "bench")) == len(rows)
    read_s = time.perf_counter() - start
    store.compact("probes", "bench")
    start = time.perf_counter()
    assert len(store.load("probes", "bench")) == len(rows)
    read_compact_s = time.perf_counter() - start

    path = scratch / f"resume-{label}.yaml"
    path.write_text(SWEEP.format(seeds=list(range(cells)), tracking=scratch / f"mlflow-{label}.db", root=root))
    first = run_sweep(load_spec(path), progress=False, executor="inline")
    assert first.cells_done == cells, first
    start = time.perf_counter()
    again = run_sweep(load_spec(path), progress=False, executor="inline")
    resume_s = time.perf_counter() - start
    assert again.probes_run == 0 and again.cells_done == cells, again
    result = {"append_ms_per_probe": 1000 * append_s / len(rows), "read_s": read_s,
              "read_compacted_s": read_compact_s, "resume_s": resume_s}
    print(f"{label:>12}: append {result['append_ms_per_probe']:.3f} ms/probe ({len(rows) // per_append} appends of "
          f"{per_append}), read {read_s:.2f} s from {len(rows) // per_append} fragments, {read_compact_s:.3f} s "
          f"compacted; no-op resume of {cells} cells {resume_s:.2f} s", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rows-per-append", type=int, default=8)
    ap.add_argument("--cells", type=int, default=500)
    ap.add_argument("--endpoint", help="HOST:PORT of an S3-compatible server (default: start moto here)")
    ap.add_argument("--bucket", default="factsweep-bench")
    args = ap.parse_args()
    for key, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    server, endpoint = (None, args.endpoint) if args.endpoint else start_moto()
    try:
        if server is not None:
            import boto3
            boto3.client("s3", endpoint_url=f"http://{endpoint}").create_bucket(Bucket=args.bucket)
        rows = probe_rows(args.rows)
        with tempfile.TemporaryDirectory() as folder:
            scratch = Path(folder)
            local = bench("local", scratch / "results", rows, args.rows_per_append, args.cells, scratch)
            remote = bench("objectstore", f"s3://{args.bucket}/bench-{os.getpid()}?endpoint_override={endpoint}"
                           "&scheme=http", rows, args.rows_per_append, args.cells, scratch)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()
    for name, value in local.items():
        print(f"RESULT local_{name} {value:.4g}")
    for name, value in remote.items():
        print(f"RESULT object_store_{name} {value:.4g}")


if __name__ == "__main__":
    main()
