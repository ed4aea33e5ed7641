"""Files that are written whole or not at all: a reader (or a kill) never meets half a file."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None], *, sync: bool = False) -> Path:
    """``write(tmp)`` fills a hidden temporary file beside ``path``, which is then renamed into place
    (``sync``: flushed to disk first). Any failure removes the temporary file and is raised."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        if sync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
