"""The code every executor's task runs: one experiment call on a batch of probes, turned into plain rows.

An exception inside the experiment becomes a failed row carrying its message, so one bad probe
never stops a sweep (the ``debug`` executor asks for it raised instead); workers never write
anywhere, the driver records what they return.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback

from orchestrator import registry


class ProbeTimeout(Exception):
    """The task's probes ran past ``resources.probe_timeout_s`` each."""


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise ProbeTimeout in this thread after ``seconds`` (a SIGALRM timer: the main thread of a Ray
    worker or of the driver; elsewhere no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise ProbeTimeout(what)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def execute(kind: str, config: dict, probes: list[dict], threads: int | None = None,
            timeout_s: float | None = None, raise_errors: bool = False) -> list[dict]:
    """Run ``probes`` of one cell; ``threads``: torch's thread count in this task (the CPUs it asked
    for; science code never sets it); ``timeout_s``: seconds per probe, after which the task's probes
    become failed rows (``resources.probe_timeout_s``); ``raise_errors``: an exception propagates
    with its traceback instead of becoming failed rows (``orchestrator.executors.debug``)."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    started_at, start = time.time(), time.perf_counter()  # one moment: started_at + task_seconds is the end
    where = {"host": socket.gethostname(), "pid": os.getpid(), **_placement(), "task_started_at": started_at}
    params = [{k: v for k, v in p.items() if k != "probe_id"} for p in probes]
    try:
        limit = timeout_s * len(probes) if timeout_s else None
        with time_limit(limit, f"ran past resources.probe_timeout_s = {timeout_s:g} s per probe "
                               f"({len(probes)} probe(s): {limit:g} s)" if limit else ""):
            results = registry.get(kind).run_probes(config, params)
        if len(results) != len(probes):
            raise RuntimeError(f"experiment {kind} returned {len(results)} results for {len(probes)} probes")
        rows = [{**p, **r, "status": "ok", "error": None} for p, r in zip(probes, results)]
    except Exception as e:  # noqa: BLE001 - recorded as a failed probe, raised only when debugging
        if raise_errors:
            raise
        message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        detail = traceback.format_exc(limit=3)[-2000:]
        rows = [{**p, "status": "failed", "error": message, "traceback": detail} for p in probes]
    seconds = time.perf_counter() - start
    return [{**r, **where, "task_seconds": seconds} for r in rows]


def _placement() -> dict:
    """Where Ray put this task: its node, the GPU ids it was given ("0", "0,1"; "" for none) and the
    CUDA_VISIBLE_DEVICES the task saw, so GPU packing can be checked from the recorded rows."""
    where = {"node_id": None, "gpu_ids": None, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        ray = sys.modules.get("ray")  # never imported here: an inline task runs without Ray
        if ray is not None and ray.is_initialized():
            where["node_id"] = ray.get_runtime_context().get_node_id()
            where["gpu_ids"] = ",".join(str(i) for i in ray.get_gpu_ids())
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return where
