"""Where a sweep's probes run: Ray tasks on a cluster (or the embedded local Ray), or this process.

The driver (``orchestrator.runner``) only submits tasks, waits for some to finish and collects their
rows; an executor decides where they run. ``InlineExecutor`` runs each task at once in the calling
process (a debugger, a notebook, a test of the planner without Ray) and gives the same rows.
"""
from __future__ import annotations

import time
from typing import Any, Protocol

from orchestrator.worker import execute


class Executor(Protocol):
    def slots(self) -> int:
        """How many tasks to keep in flight."""

    def cores(self) -> int:
        """How many tasks run at once (fewer in flight leave a core idle)."""

    def submit(self, kind: str, config: dict, probes: list[dict]) -> Any:
        """Start one task; returns its handle."""

    def wait(self, handles: list, timeout: float) -> list:
        """The handles that are finished (at least one unless ``timeout`` seconds pass first)."""

    def collect(self, handle, probes: list[dict]) -> list[dict]:
        """The task's rows; failed rows for its probes when the task itself died."""


class RayExecutor:
    """Ray tasks with the sweep's resources; a task whose worker died is retried by Ray."""

    def __init__(self, ray, *, num_cpus: float, num_gpus: float, max_retries: int,
                 probe_timeout_s: float | None = None):
        self.ray, self.num_cpus, self.timeout = ray, num_cpus, probe_timeout_s
        self.task = ray.remote(execute).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                                                retry_exceptions=False)
        self.threads = max(1, int(num_cpus))  # torch inside a task uses the CPUs the task asked for
        self._cores, self._checked = 1, 0.0

    def slots(self) -> int:
        return 2 * self.cores()

    def cores(self) -> int:
        if time.monotonic() - self._checked > 5:  # workers may join (autoscaling) or leave
            self._cores = max(1, int(self.ray.cluster_resources().get("CPU", 1) / self.num_cpus))
            self._checked = time.monotonic()
        return self._cores

    def submit(self, kind: str, config: dict, probes: list[dict]):
        return self.task.remote(kind, config, probes, self.threads, self.timeout)

    def wait(self, handles: list, timeout: float) -> list:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return ready

    def collect(self, handle, probes: list[dict]) -> list[dict]:
        try:
            return self.ray.get(handle)
        except Exception as e:  # noqa: BLE001 - a dead worker or node becomes failed probes
            message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
            return [{**p, "status": "failed", "error": message} for p in probes]


class InlineExecutor:
    """Each task runs to completion inside ``submit``, in this process and its thread settings."""

    def __init__(self, probe_timeout_s: float | None = None):
        self._rows: dict[int, list[dict]] = {}
        self.timeout = probe_timeout_s

    def slots(self) -> int:
        return 1

    def cores(self) -> int:
        return 1

    def submit(self, kind: str, config: dict, probes: list[dict]) -> int:
        handle = len(self._rows)
        self._rows[handle] = execute(kind, config, probes, timeout_s=self.timeout)
        return handle

    def wait(self, handles: list, timeout: float) -> list:
        return list(handles)

    def collect(self, handle: int, probes: list[dict]) -> list[dict]:
        return self._rows.pop(handle)
