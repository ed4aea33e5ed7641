"""Fact-set geometries by name: the synthetic ones and real LLM embeddings, one registry.

``make_factset(geometry, d, num_facts, seed, **options)`` builds the named geometry's fact set; each
geometry takes the options its typed options class declares and leaves the others (a sweep cell
holds every geometry's options). See docs/science.md#fact-sets-and-geometries.
"""
from __future__ import annotations

import dataclasses

from factmlp import synthetic_geometries
from factmlp.embeddings import geometries as embeddings
from factmlp.factsets import FactSet, Geometry
from factmlp.options import ParamError

GEOMETRIES: dict[str, Geometry] = {**synthetic_geometries.GEOMETRIES, **embeddings.GEOMETRIES}
LLM_GEOMETRIES = embeddings.NAMES
OPTION_NAMES = {f.name for g in GEOMETRIES.values() for f in dataclasses.fields(g.options)}


def check(geometry: str, d: int, num_facts: int, **options) -> None:
    """Raise ValueError('key: ...') for a fact set that cannot be built, without building it."""
    g = _named(geometry)
    g.check(d, num_facts, _options(g, options))


def make_factset(geometry: str = "spherical", d: int = 64, num_facts: int = 256, seed: int = 0,
                 **options) -> FactSet:
    """The fact set of ``geometry`` for (d, F, seed) and the options (see each geometry's options class)."""
    g = _named(geometry)
    return g.build(d, num_facts, seed, _options(g, options))


def _named(geometry: str) -> Geometry:
    if geometry not in GEOMETRIES:
        raise ParamError('geometry', f"got {geometry!r}; allowed: {', '.join(GEOMETRIES)}")
    return GEOMETRIES[geometry]


def _options(g: Geometry, options: dict):
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ParamError(unknown[0], f"not an option of any geometry; allowed: {', '.join(sorted(OPTION_NAMES))}")
    return g.options.pick(options)
