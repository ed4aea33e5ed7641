"""Tiny sweep files of the `synthetic` experiment (no torch, no science), written for a test."""
from __future__ import annotations

from pathlib import Path


def synthetic_sweep(path: Path, name: str, root, *, probes: int = 2, sleep: float = 0.0,
                    probes_per_task: int | None = None, extra: str = "") -> Path:
    """Write a sweep of two cells (seeds 0 and 1) with ``probes`` probes each to ``path``; return it."""
    lines = [f"name: {name}", "experiment: synthetic", f"fixed: {{num_probes: {probes}, sleep: {sleep}}}",
             "grid: {seed: [0, 1]}", f"storage: {{root: '{root}'}}"]
    if probes_per_task is not None:
        lines.append(f"packing: {{probes_per_task: {probes_per_task}}}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path
