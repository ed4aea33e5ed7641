"""Probes run one task at a time in this process: a notebook, a laptop without Ray, a fast test.

The rows are those Ray gives (a raising probe is a failed row), minus the Ray placement columns.
"""
from __future__ import annotations

from orchestrator.worker import execute


class InlineExecutor:
    """Each task runs to completion inside ``submit``, in this process and its thread settings."""

    raise_errors = False  # a probe's exception becomes a failed row, as on Ray

    def __init__(self, probe_timeout_s: float | None = None):
        self._rows: dict[int, list[dict]] = {}
        self.timeout = probe_timeout_s

    @classmethod
    def for_sweep(cls, spec, address, status) -> InlineExecutor:
        return cls(probe_timeout_s=spec.probe_timeout_s)

    def slots(self) -> int:
        return 1

    def cores(self) -> int:
        return 1

    def submit(self, kind: str, config: dict, probes: list[dict]) -> int:
        handle = len(self._rows)
        self._rows[handle] = execute(kind, config, probes, timeout_s=self.timeout, raise_errors=self.raise_errors)
        return handle

    def wait(self, handles: list, timeout: float) -> list:
        return list(handles)

    def collect(self, handle: int, probes: list[dict]) -> list[dict]:
        return self._rows.pop(handle)
