"""Where a sweep's probes run, chosen by name: ``ray`` (the default), ``inline``, ``debug``, or any
executor another installed package declares in the ``factsweep.executors`` entry-point group.

The driver (``orchestrator.runner``) only submits tasks, waits for some to finish and collects their
rows; an executor decides where they run. An entry point names a class with a ``for_sweep``
constructor and the methods of ``Executor``: a new backend (SLURM, a thread pool) is one module and
one line in its package's pyproject.toml. A name is imported only when chosen, so ``inline`` and
``debug`` never import Ray.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from orchestrator import plugins
from orchestrator.errors import SpecError

GROUP = "factsweep.executors"
DEFAULT = "ray"


class Executor(Protocol):
    @classmethod
    def for_sweep(cls, spec, address: str | None, status: Callable[[str], None]) -> "Executor":
        """One for ``spec`` (its resources, its cluster; ``address`` from the command line wins);
        ``status`` shows a phase such as 'starting Ray' on the progress bar."""

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


def names() -> list[str]:
    """Every installed executor's name, none of them imported."""
    return plugins.names(GROUP)


def check_name(source: str, key: str, name: str) -> str:
    """``name`` if an installed package declares it, else a SpecError naming ``key`` and the names."""
    if name not in names():
        raise SpecError(source, key, f"got {name!r}; allowed: {', '.join(names())}")
    return name


def start(name: str, spec, address: str | None = None, status: Callable[[str], None] = lambda text: None) -> Executor:
    """The executor ``name`` made for ``spec`` (Ray is started or joined here, for ``ray`` only)."""
    cls = plugins.load(GROUP, name)
    missing = [m for m in ("for_sweep", "slots", "cores", "submit", "wait", "collect") if not hasattr(cls, m)]
    if missing:
        raise TypeError(f"entry point {name!r} of {GROUP} lacks {', '.join(missing)} of the Executor protocol")
    return cls.for_sweep(spec, address, status)
