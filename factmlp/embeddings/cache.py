"""The capture cache: each capture computed once per machine, in a file named by all its inputs.

Sweep workers on one machine share it (``$FACTSWEEP_CACHE``, default ``~/.cache/factsweep``); a
file lock makes the others wait for the one that captures, then they read its file.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from factmlp.embeddings import safetensors
from factmlp.embeddings.capture import CAPTURE_VERSION, TEXT_SOURCE, capture
from factmlp.embeddings.models import check_model, num_layers, resolve_layer


def cache_dir() -> Path:
    return Path(os.environ.get("FACTSWEEP_CACHE") or Path.home() / ".cache" / "factsweep") / "llm"


def cache_path(model: str, kind: str, layer: int, rows: int, seed: int) -> Path:
    """Named by everything the rows depend on; the text source's version is the Python version."""
    check_model(model)
    text = f"{TEXT_SOURCE}-py{sys.version_info[0]}.{sys.version_info[1]}" if kind == "mlp_io" else "notext"
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
    layer_part = f"L{layer}" if kind == "mlp_io" else "Lx"
    return cache_dir() / f"{kind}-{slug}-{layer_part}-n{rows}-s{seed}-{text}-v{CAPTURE_VERSION}.safetensors"


@contextlib.contextmanager
def _locked(path: Path):
    """One capture per name at a time on this machine; others wait, then find the file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_capture(model: str, kind: str, layer: int, rows: int, seed: int = 0) -> Path:
    """The capture's file, computed once per machine (the cache is keyed by all its inputs)."""
    if kind == "mlp_io":  # the file is named by the real layer, so -1 and its value share it
        layer = resolve_layer(model, layer, num_layers(model))
    path = cache_path(model, kind, layer, rows, seed)
    if path.exists():
        return path
    with _locked(path):
        if not path.exists():
            safetensors.write(path, *capture(model, kind, layer, rows, seed))
    return path
