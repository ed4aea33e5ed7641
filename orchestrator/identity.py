"""Stable ids: a hash of the resolved, canonical config and the result-schema version.

Operational settings (resources, tracking, paths, cluster) never reach a cell's config, so moving
a sweep from a laptop to a cluster keeps every id, and a re-launch finds its finished work.
"""
from __future__ import annotations

import hashlib
import json

# Raised when recorded results stop meaning what the current code would compute for the same id:
# 2 = nested random features and the verification round (cells record stable_width, provenance).
SCHEMA_VERSION = 2


def digest(payload: dict) -> str:
    """A short stable hash of a JSON-able payload."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cell_id(experiment: str, config: dict) -> str:
    return digest({"experiment": experiment, "config": config, "schema": SCHEMA_VERSION})


def probe_id(cell: str, probe: dict) -> str:
    return digest({"cell": cell, "probe": probe, "schema": SCHEMA_VERSION})
