"""The drive loop of ``orchestrator.runner`` against an executor that finishes tasks out of order, holds
three slots and loses a task to a dead worker: every probe is recorded once, a cell advances only when
all its tasks are back, a new cell starts only while a slot is free, and the cells end as an inline run's.

The executor here is the project's own protocol (``orchestrator.executors.Executor``) over the real
worker code: only the order of completion and the death are staged. Ray itself is tested end to end in
tests/test_end_to_end.py.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.worker import execute
from sweep_files import synthetic_sweep

ROUNDS = ["fixed.rounds=2", "grid.seed=[0,1,2,3,4]"]  # with 4 probes a cell: 2 a round, one a task; 5 cells


class NewestFirst:
    """Three slots; ``wait`` returns the two newest tasks, newest first; task number ``dies`` comes back
    as failed rows, as ``RayExecutor.collect`` returns a task whose worker died."""

    SLOTS = 3

    def __init__(self, dies: int | None = None):
        self.dies, self.tasks, self.next_handle = dies, {}, 0
        self.collected, self.most_in_flight, self.started_over_slots = [], 0, []

    def slots(self) -> int:
        return self.SLOTS

    def cores(self) -> int:
        return self.SLOTS

    def submit(self, kind: str, config: dict, probes: list[dict]) -> int:
        busy = Counter(c["seed"] for _, c, _ in self.tasks.values())
        if not busy[config["seed"]] and len(self.tasks) >= self.SLOTS:  # a cell (re)started with no slot free
            self.started_over_slots.append((config["seed"], len(self.tasks)))
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.tasks[handle] = (kind, config, probes)
        self.most_in_flight = max(self.most_in_flight, len(self.tasks))
        return handle

    def wait(self, handles: list, timeout: float) -> list:
        assert sorted(handles) == sorted(self.tasks), "the driver lost track of a task in flight"
        return sorted(handles)[-2:][::-1]

    def collect(self, handle: int, probes: list[dict]) -> list[dict]:
        kind, config, submitted = self.tasks.pop(handle)
        assert probes == submitted
        self.collected.append(handle)
        if handle == self.dies:
            return [{**p, "status": "failed", "error": "WorkerCrashedError: the worker died"} for p in probes]
        return execute(kind, config, probes)


def test_out_of_order_completion_records_every_probe_once_within_the_slots(tmp_path, shared_tracking):
    path = synthetic_sweep(tmp_path / "drive.yaml", "drive", tmp_path / "results", probes=4, probes_per_task=1)
    executor = NewestFirst(dies=3)
    report = run_sweep(load_spec(path, [*ROUNDS, shared_tracking]), progress=False, executor=executor)

    assert executor.collected != sorted(executor.collected), "the tasks did not finish out of order"
    assert executor.started_over_slots == [], "a cell started while every slot was taken"
    # Slots filled, and exceeded only by the second task of a round whose first took the last slot.
    assert executor.SLOTS <= executor.most_in_flight <= executor.SLOTS + 1, executor.most_in_flight
    probes = Store(tmp_path / "results").load("probes", "drive")
    assert len(probes) == executor.next_handle == report.probes_run == 4 * 4 + 2  # the dead task's cell stops after a round
    assert not probes.duplicated(["cell_id", "probe_id"]).any(), "a probe was run twice"
    failed = probes[probes["status"] == "failed"]
    assert len(failed) == report.probes_failed == 1 and failed["error"].iloc[0].startswith("WorkerCrashedError")
    assert (report.cells_done, report.cells_failed) == (4, 1)

    again = run_sweep(load_spec(path, [*ROUNDS, shared_tracking]), retry_failed=True, progress=False, executor=NewestFirst())
    assert (again.cells_done, again.probes_run, again.probes_failed) == (5, 3, 0)  # the dead probe, then its round 2

    inline = synthetic_sweep(tmp_path / "inline.yaml", "drive", tmp_path / "inline", probes=4, probes_per_task=1)
    run_sweep(load_spec(inline, [*ROUNDS, shared_tracking]), progress=False, executor="inline")
    summaries = [Store(root).load("cells", "drive").set_index("cell_id").sort_index()[["seed", "num_ok", "value_sum"]]
                 for root in (tmp_path / "results", tmp_path / "inline")]
    assert len(summaries[0]) == 5 and summaries[0][["seed", "num_ok"]].equals(summaries[1][["seed", "num_ok"]])
    # The same probe values, summed in the order they came back.
    assert np.allclose(summaries[0]["value_sum"], summaries[1]["value_sum"], rtol=1e-12, atol=0), summaries
