"""Feedback while a sweep runs: a bar on a terminal, plain lines anywhere else (a batch job, ``| tee``).

On a terminal the bar counts cells and probes and says when Ray is starting. Elsewhere each finished
cell prints one line (its keys, its result, the elapsed time) and a heartbeat line appears at least
every ``HEARTBEAT`` seconds, so a log shows the sweep is alive long before it ends.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

HEARTBEAT = 60.0


class Progress:
    """``mode``: 'bar', 'lines' or 'quiet'; None picks 'bar' on a terminal and 'lines' otherwise."""

    def __init__(self, name: str, cells: int, done: int, *, mode: str | None = None, stream=None):
        self.stream = stream or sys.stdout
        self.mode = mode or ("bar" if self.stream.isatty() else "lines")
        self.name, self.cells, self.done = name, cells, done
        self.probes = self.failed = 0
        self.start = self.last_line = time.monotonic()
        self.bar = None
        if self.mode == "bar":
            self.bar = tqdm(total=cells, initial=done, desc=name, unit="cell", dynamic_ncols=True, file=self.stream)

    def begin(self) -> None:
        """The work starts (in lines mode, a run refused before it prints nothing to stdout)."""
        if self.mode == "lines":
            self._line(f"{self.cells} cells, {self.done} already done, {self.cells - self.done} to run")

    def _line(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.start:7.1f}s] {self.name}: {text}\n")
        self.stream.flush()
        self.last_line = time.monotonic()

    def status(self, text: str) -> None:
        """A phase such as 'starting Ray': the bar's label on a terminal (lines mode says nothing
        before ``begin``: the work has not started)."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.name} ({text})")
            self.bar.refresh()

    def probes_recorded(self, ok: int, failed: int) -> None:
        self.probes += ok + failed
        self.failed += failed
        if self.bar is not None:
            self.bar.set_description_str(self.name)
            self.bar.set_postfix(probes=self.probes, failed=self.failed, refresh=True)

    def cell_done(self, keys: dict, results: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.mode == "lines":
            shown = " ".join(f"{k}={v}" for k, v in keys.items())
            result = ", ".join(f"{k} {_short(v)}" for k, v in results.items())
            self._line(f"cell {self.done}/{self.cells} done: {shown}: {result}")

    def tick(self, in_flight: int) -> None:
        """Call often: prints a heartbeat when nothing was printed for HEARTBEAT seconds."""
        if self.mode == "lines" and time.monotonic() - self.last_line >= HEARTBEAT:
            self._line(f"running: {self.done}/{self.cells} cells done, {self.probes} probes recorded "
                       f"({self.failed} failed), {in_flight} tasks in flight")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
