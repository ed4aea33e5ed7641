"""Executors chosen by name (``orchestrator.executors``): ``--executor`` or the file's ``cluster.executor``,
an unknown name refused before anything is written, ``inline`` and ``debug`` made without Ray, and
``debug`` raising a probe's exception where ``inline`` records it as a failed row."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from orchestrator.cli import main, rerun_command
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from sweep_files import synthetic_sweep

FAILING = ["fixed.fail_index=1", "grid.seed=[0]"]  # one cell of 2 probes, the second raises RuntimeError


def test_inline_and_debug_are_made_and_run_a_task_without_importing_ray(tmp_path):
    path = synthetic_sweep(tmp_path / "s.yaml", "s", tmp_path / "results")
    code = ("import sys; from orchestrator import executors; from orchestrator.spec import load_spec; "
            f"spec = load_spec({str(path)!r}); "
            "made = [executors.start(n, spec) for n in ('inline', 'debug')]; "
            "rows = [m.collect(m.submit('synthetic', spec.cells[0], [{'index': 0, 'probe_id': 'p'}]), []) for m in made]; "
            "print(executors.names(), [type(m).__name__ for m in made], [r[0]['status'] for r in rows], "
            "'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "['debug', 'inline', 'ray'] ['InlineExecutor', 'DebugExecutor'] ['ok', 'ok'] False", out


def test_debug_raises_the_probes_exception_where_inline_records_a_failed_row(tmp_path, shared_tracking, capsys):
    path = synthetic_sweep(tmp_path / "s.yaml", "s", tmp_path / "results", probes_per_task=1,
                           extra="cluster: {executor: debug}\n")
    with pytest.raises(RuntimeError, match="injected failure") as raised:
        main(["run", str(path), *FAILING, shared_tracking])  # the file's executor
    frames = [entry.name for entry in raised.traceback]
    assert frames[-2:] == ["run_probes", "_fail"] and str(raised.traceback[-1].path).endswith("synthetic.py"), frames
    with pytest.raises(RuntimeError, match="injected failure"):
        run_sweep(load_spec(path, [*FAILING, shared_tracking]), progress=False)
    store = Store(tmp_path / "results")
    assert "failed" not in set(store.load("probes", "s", missing_ok=True).get("status", []))  # nothing recorded as failed

    assert main(["run", str(path), *FAILING, shared_tracking, "--executor", "inline"]) == 0  # the flag wins
    probes = store.load("probes", "s").set_index("index")
    assert list(probes.loc[[0, 1], "status"]) == ["ok", "failed"], probes
    assert probes.loc[1, "error"] == "RuntimeError: injected failure" and "_fail" in probes.loc[1, "traceback"]
    assert "1 cells wait on failed probes" in capsys.readouterr().out


@pytest.mark.parametrize("how, key", [(["--executor", "slurm"], "run: --executor"),
                                      (["cluster.executor=slurm"], "s.yaml: cluster.executor"),
                                      (["--inline", "--executor", "ray"], "run: --executor")])
def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path, capsys, how, key):
    path = synthetic_sweep(tmp_path / "s.yaml", "s", tmp_path / "results")
    assert main(["run", str(path), *how]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and "allowed:" in err, err
    assert "debug, inline, ray" in err or "--inline is --executor inline" in err, err
    assert not (tmp_path / "results").exists()


def test_the_resume_command_names_the_executor(tmp_path):
    spec = load_spec(synthetic_sweep(tmp_path / "s.yaml", "s", tmp_path / "results"), ["grid.seed=[3]"])
    line = rerun_command(spec, argparse.Namespace(inline=False, executor="debug", address=None))
    assert line == f"factsweep run {spec.source} 'grid.seed=[3]' --executor debug"
    assert rerun_command(spec, argparse.Namespace(inline=True, executor=None, address="auto")).endswith(" --inline")


def test_executor_flag_goes_anywhere_between_overrides():
    from orchestrator.cli import parser
    args = parser().parse_args(["run", "s.yaml", "grid.d=[16]", "--executor", "debug", "seeds=[0]"])
    assert (args.overrides, args.executor, args.inline) == (["grid.d=[16]", "seeds=[0]"], "debug", False)
