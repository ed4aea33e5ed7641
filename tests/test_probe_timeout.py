"""A probe that runs for ever is bounded by `resources.probe_timeout_s`: past it, the task's probes become
failed rows naming the limit, the sweep goes on, and `--retry-failed` can run them again."""
from __future__ import annotations

import time

import pytest

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

SLOW = """
name: slow
experiment: synthetic
fixed: {{num_probes: 2, sleep: 30}}
resources: {{probe_timeout_s: 0.5}}
packing: {{probes_per_task: 2}}
storage: {{root: '{root}'}}
"""


@pytest.mark.parametrize("where", ["inline", pytest.param("ray", marks=pytest.mark.slow)])  # ray: starts Ray
def test_a_probe_past_its_time_limit_is_a_failed_row(tmp_path, shared_tracking, request, where):
    if where == "ray":
        request.getfixturevalue("ray_session")
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW.format(root=tmp_path / "results"))
    started = time.monotonic()
    report = run_sweep(load_spec(path, [shared_tracking]), progress=False, executor=where)
    seconds = time.monotonic() - started
    probes = Store(tmp_path / "results").load("probes", "slow")
    assert report.probes_failed == 2 and len(probes) == 2 and set(probes["status"]) == {"failed"}
    assert set(probes["error"]) == {"ProbeTimeout: ran past resources.probe_timeout_s = 0.5 s per probe "
                                    "(2 probe(s): 1 s)"}, set(probes["error"])
    assert seconds < 25, f"{seconds:.1f}s: the 30 s probes were not stopped"
