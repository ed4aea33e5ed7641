"""Code chosen by name from the entry points installed packages declare (experiment kinds, executors).

A sweep file or a flag names such code only by its name in a group; only an installed package's
metadata maps a name to an import path, so no input can import anything. Nothing is imported until
a name is loaded.
"""
from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points


@functools.cache
def declared(group: str) -> dict[str, EntryPoint]:
    """The group's entry points by name, none of them imported."""
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(declared(group))


def load(group: str, name: str):
    """The object ``name`` points at in ``group``; KeyError when no installed package declares it."""
    return declared(group)[name].load()
