"""The one rule for names that become folder names (``sweep=<name>``), MLflow experiments and SQL views.

``\\Z`` rather than ``$``: ``$`` also matches before a final newline, which let ``'x\\n'`` through.
"""
from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
NAME_RULE = "letters, digits, '_', '-', '.' (no path separators or '..')"


def is_name(text: object) -> bool:
    """True for a safe sweep or table name: the pattern above and no ``..``."""
    return isinstance(text, str) and bool(NAME_PATTERN.match(text)) and ".." not in text
