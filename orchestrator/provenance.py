"""Which command and which code made a number: one ``invocations`` row per ``run``, ids on every row.

Every probe and cell row carries the ``invocation_id`` and ``code_version`` that produced it, so
"which command, with which overrides, at which commit made this number?" is one join:
``select * from cells join invocations using (invocation_id)``.
"""
from __future__ import annotations

import functools
import getpass
import json
import os
import platform
import socket
import subprocess
import time
import uuid
from pathlib import Path


# What decides a result: the packages, the sweep files and the build; docs and reports do not.
CODE_PATHS = ("factmlp", "orchestrator", "sweeps", "pyproject.toml")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code that ran (``-dirty`` when the code itself has uncommitted
    changes: edits to docs or reports leave it clean) in a checkout; else the package version."""
    try:
        root = Path(__file__).resolve().parent.parent

        def git(*args):
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10)
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode == 0 and head.stdout.strip():
            changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
            dirty = changed.returncode != 0 or bool(changed.stdout.strip())
            return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"factsweep-{package_version()}"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("factsweep")
    except PackageNotFoundError:
        return "unknown"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_invocation(spec, *, command: str, address: str | None) -> dict:
    """The row describing this invocation of ``command`` on ``spec``; ``state`` is 'running' until
    ``finish_invocation`` writes the newer row with the outcome."""
    return {
        "invocation_id": uuid.uuid4().hex[:16], "command": command,  # the sweep is the partition
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "finished_at": None,
        "source": str(Path(spec.source).resolve()), "file_sha256": spec.file_sha256,
        "overrides": json.dumps(list(spec.overrides)), "profile": spec.profile,
        "factsweep_version": package_version(), "code_version": code_version(),
        "host": socket.gethostname(), "pid": os.getpid(), "user": _user(), "python": platform.python_version(),
        "ray_address": address or "embedded", "cells": len(spec.cells), "state": "running",
        "cells_done": None, "probes_run": None, "probes_failed": None,
    }


def finish_invocation(row: dict, state: str, **counts) -> dict:
    return {**row, **counts, "state": state, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
