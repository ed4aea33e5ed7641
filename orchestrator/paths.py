"""One check for every path or name that reaches the file system, whatever its source: the sweep file,
an override, a command-line flag or the environment.

The operating system refuses a NUL byte with a Python ``ValueError`` (a traceback, not an ``OSError``),
accepts control characters that then break every line that prints the path, and refuses over-long names
with an error far from the key that set them. Checked where the value enters, all of them are one line
naming the key. Also the cap on how deeply an override's value nests (OmegaConf recurses per level).
"""
from __future__ import annotations

import os
import re

from orchestrator.errors import SpecError

MAX_PATH = 4096  # bytes: Linux's PATH_MAX
MAX_PART = 255   # bytes of one file or folder name: NAME_MAX
MAX_OVERRIDE_DEPTH = 32  # as a sweep file's nesting (orchestrator/sweepyaml.py)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")


def path_problem(value, *, folder: bool = False) -> str | None:
    """Why ``value`` cannot be a path, or None. ``folder``: it must not name an existing non-folder."""
    if not isinstance(value, str):
        return f"got {value!r} ({type(value).__name__}); allowed: a path"
    shown = repr(value[:120] + ("..." if len(value) > 120 else ""))
    if "\x00" in value:
        return f"got {shown}: a NUL byte; allowed: a path without NUL or control characters"
    if _CONTROL.search(value):
        return f"got {shown}: a control character; allowed: a path without NUL or control characters"
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH:
        return f"got a path of {size} bytes; allowed: at most {MAX_PATH} bytes"
    long = [p for p in value.split("/") if len(p.encode("utf-8", "surrogateescape")) > MAX_PART]
    if long:
        return f"got a name of {len(long[0].encode('utf-8', 'surrogateescape'))} bytes in {shown}; allowed: names " \
               f"of at most {MAX_PART} bytes between slashes"
    if folder and "://" not in value and os.path.exists(value) and not os.path.isdir(value):
        return f"got {shown}: a file, not a folder; allowed: a folder (or a path where one can be made)"
    return None


def check_path(source: str, key: str, value, *, folder: bool = False) -> None:
    """``path_problem`` as a SpecError naming ``source`` (file or command) and ``key``."""
    problem = path_problem(value, folder=folder)
    if problem:
        raise SpecError(source, key, problem)


def check_environment(variable: str, *, folder: bool = False) -> None:
    """A path taken from an environment variable, named by the variable."""
    value = os.environ.get(variable)
    if value:
        check_path("environment", variable, value, folder=folder)


def nesting(text: str) -> int:
    """How deeply the lists and mappings of an override's value nest (brackets inside quotes do not count)."""
    depth = deepest = 0
    for char in _QUOTED.sub("''", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_override(source: str, item: str) -> None:
    """A ``key=value`` override: a key that is a name path and a value of bounded nesting."""
    key, value = item.split("=", 1)
    if _CONTROL.search(item):
        raise SpecError(source, repr(key)[1:-1], "the override holds a NUL or control character; allowed: "
                                                 "printable key=value text")
    depth = nesting(value)
    if depth > MAX_OVERRIDE_DEPTH:
        raise SpecError(source, key, f"the value nests {depth} levels deep; allowed: at most {MAX_OVERRIDE_DEPTH} "
                                     "levels of lists and mappings")
    if key.count(".") >= MAX_OVERRIDE_DEPTH:
        raise SpecError(source, key[:80], f"a key of {key.count('.') + 1} levels; allowed: at most "
                                          f"{MAX_OVERRIDE_DEPTH}")
