"""Probes as Ray tasks with the sweep's resources, on a cluster or on the embedded local Ray."""
from __future__ import annotations

import time

from orchestrator.worker import execute


class RayExecutor:
    """Ray tasks with the sweep's resources; a task whose worker died is retried by Ray."""

    def __init__(self, ray, *, num_cpus: float, num_gpus: float, max_retries: int,
                 probe_timeout_s: float | None = None):
        self.ray, self.num_cpus, self.timeout = ray, num_cpus, probe_timeout_s
        self.task = ray.remote(execute).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                                                retry_exceptions=False)
        self.threads = max(1, int(num_cpus))  # torch inside a task uses the CPUs the task asked for
        self._cores, self._checked = 1, 0.0

    @classmethod
    def for_sweep(cls, spec, address, status) -> RayExecutor:
        """Joins ``address`` (else the file's cluster.address) or starts a local Ray; refuses a task
        shape no node can run."""
        from orchestrator.cluster import connect_for
        status("starting Ray" if not (address or spec.cluster_address) else "connecting to Ray")
        ray = connect_for(spec, address)
        status("running")
        return cls(ray, num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_retries=spec.max_retries,
                   probe_timeout_s=spec.probe_timeout_s)

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
