"""Synthetic probes for exercising the sweep machinery: cheap, deterministic, optionally failing.

Used by the orchestration-overhead benchmark (no-op probes) and the fault tests (a probe that
hits a NaN loss, a singular matrix or an out-of-memory error, or sleeps long enough to be killed).
A cell asks for ``num_probes`` probes in ``rounds`` adaptive rounds, like a search would.
"""
from __future__ import annotations

import math
import time

import numpy as np

from factmlp.options import Param
from orchestrator.experiment import Experiment, Reporting

FAILURES = ("exception", "nan", "singular", "oom")

PARAMS = {
    "num_probes": Param(int, 4, low=1, high=1 << 20),
    "rounds": Param(int, 1, low=1, high=1 << 10, doc="probes are asked for in this many rounds"),
    "sleep": Param(float, 0.0, low=0.0, high=3600.0, doc="seconds each probe sleeps"),
    "fail_index": Param(int, -1, low=-1, doc="index of the probe that fails (-1: none)"),
    "failure": Param(str, "exception", choices=FAILURES),
    "seed": Param(int, 0, low=0),
}


def next_probes(cell: dict, results: list[dict]) -> list[dict]:
    done = {int(r["index"]) for r in results}
    per_round = math.ceil(cell["num_probes"] / cell["rounds"])
    upto = min(cell["num_probes"], per_round * (len(done) // per_round + 1))
    return [{"index": i} for i in range(upto) if i not in done]


def _fail(kind: str) -> None:
    if kind == "nan":
        with np.errstate(invalid="ignore"):
            loss = np.log(np.float64(-1.0))
        raise FloatingPointError(f"loss is {loss}")
    if kind == "singular":
        np.linalg.solve(np.zeros((3, 3)), np.ones(3))
    if kind == "oom":
        np.ones(1 << 46, dtype=np.float64)  # 512 TiB: a real failed allocation
    raise RuntimeError("injected failure")


def run_probes(cell: dict, probes: list[dict]) -> list[dict]:
    out = []
    for probe in probes:
        index = int(probe["index"])
        if cell["sleep"]:
            time.sleep(cell["sleep"])
        if index == cell["fail_index"]:
            _fail(cell["failure"])
        out.append({"value": float(np.random.default_rng([cell["seed"], index]).standard_normal())})
    return out


def summarize(cell: dict, results: list[dict]) -> dict:
    return {"num_ok": len(results), "value_sum": float(sum(r["value"] for r in results))}


EXPERIMENT = Experiment(
    name="synthetic", params=PARAMS, next_probes=next_probes, run_probes=run_probes, summarize=summarize,
    reporting=Reporting(summary_columns=("num_probes", "seed", "num_ok", "value_sum"), trajectory=("index", "value")),
)
