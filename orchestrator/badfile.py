"""``BadFile``: a file the program reads failed its format's schema check.

Every reader of a file that someone else wrote (a safetensors capture, an embedding table, a Parquet
fragment, a lock file, an invocations row, an artifact read back from MLflow) parses and checks it before
any value is used, and turns any defect into this one error: the file and what is wrong, on one line. A
caller shows it as it is, or (the store) sets the file aside. Also the shared bounds of those checks.
"""
from __future__ import annotations

import os
import re

MAX_JSON_DEPTH = 8  # a safetensors header needs 3 (file, tensor, shape); a lock file 1
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


class BadFile(ValueError):
    """A file whose content is not what its format allows: ``path`` and ``what`` (one line each)."""

    def __init__(self, path, what: str):
        self.path = os.fspath(path) if not isinstance(path, str) else path
        self.what = (str(what).splitlines() or ["unreadable"])[0][:300]
        super().__init__(f"{self.path}: {self.what}")


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, found without parsing it (Python's parser
    recurses once per level and raises RecursionError past about a thousand)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b'""', raw)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def check_json_depth(path, raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    depth = json_depth(raw)
    if depth > limit:
        raise BadFile(path, f"JSON nested {depth} levels deep; allowed: at most {limit}")


def is_count(value) -> bool:
    """A non-negative integer in JSON (``true`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
