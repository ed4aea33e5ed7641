"""Experiment kinds by name, from the ``factsweep.experiments`` entry-point group.

A sweep file selects code only by a kind's name, and only installed packages declare kinds
(factsweep's own in its pyproject.toml; a researcher's package adds one by declaring an entry point
in that group), so a YAML can never name an import path. A kind's module is imported only when
something uses that kind: a Ray worker running capacity probes never imports the Transformer study.
"""
from __future__ import annotations

import functools

from orchestrator import plugins
from orchestrator.experiment import Experiment

GROUP = "factsweep.experiments"


def names() -> list[str]:
    """Every registered kind, without importing any of them."""
    return plugins.names(GROUP)


@functools.cache
def get(name: str) -> Experiment:
    """The experiment of kind ``name``; KeyError when no installed package declares it."""
    experiment = plugins.load(GROUP, name)
    if not isinstance(experiment, Experiment) or experiment.name != name:
        raise TypeError(f"entry point {name!r} of {GROUP} is not an Experiment named {name!r}")
    return experiment


def every() -> dict[str, Experiment]:
    """All kinds, imported (for documentation: parameter tables, the fits columns of every law)."""
    return {name: get(name) for name in names()}
