"""Probes in this process with their exceptions raised, for a debugger.

``factsweep run X.yaml --executor debug`` under ``python -m pdb`` stops at the line that raised
(every other executor records the exception as a failed row and goes on). What was recorded
before stays; the failing task, and the tasks of its cell submitted with it, record nothing, so the
next run starts them again. No ``resources.probe_timeout_s``: a pause at a breakpoint must not count
as a stuck probe.
"""
from __future__ import annotations

from orchestrator.executors.inline import InlineExecutor


class DebugExecutor(InlineExecutor):
    """``InlineExecutor`` whose probes' exceptions propagate, traceback and all, out of ``factsweep run``."""

    raise_errors = True

    @classmethod
    def for_sweep(cls, spec, address, status) -> DebugExecutor:
        return cls(probe_timeout_s=None)
