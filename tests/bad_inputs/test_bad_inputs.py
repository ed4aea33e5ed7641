"""Bad input, through the real CLI: exit code 2, exactly one line on stderr of the form
``factsweep: error: <file>: <key>: <message naming what is allowed>``, and nothing written.

Each file in ``sweeps/`` is one case. Its header comments say what the error must be::

    # <what is wrong>
    # key: <the key the message must name>
    # expect: <a fragment the message must contain>      (one or more)
    # override: <a key=value passed after the file>      (zero or more)

``@ROOT@`` in a file is replaced with a results folder inside the test's tmp folder, and the command
runs with that tmp folder as its working directory (so the default ``results`` lands there too); after
the call the tmp folder must hold nothing but the sweep file. No case starts Ray: validation comes first.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

HERE = Path(__file__).parent
REPO = HERE.parent.parent
CASES = sorted((HERE / "sweeps").glob("*.yaml"))
SECRET = "s3cr3t-from-the-environment"
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def header(path: Path) -> tuple[str, list[str], list[str]]:
    key, expects, overrides = None, [], []
    for line in path.read_text(errors="replace").splitlines():  # headers are ASCII; not_utf8.yaml is not
        if line.startswith("# key: "):
            key = line[len("# key: "):]
        elif line.startswith("# expect: "):
            expects.append(line[len("# expect: "):])
        elif line.startswith("# override: "):
            overrides.append(line[len("# override: "):])
    assert key is not None and expects, f"{path.name}: header needs '# key:' and '# expect:' lines"
    return key, expects, overrides


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The tmp folder as working directory, with a value in the environment that must never leak."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACTSWEEP_SECRET", SECRET)
    return tmp_path


def place(case: Path, folder: Path) -> Path:
    path = folder / case.name
    path.write_bytes(case.read_bytes().replace(b"@ROOT@", str(folder / "results").encode()))
    return path


def check_error(code: int, out: str, err: str, source: str, key: str, expects: list[str]) -> str:
    assert code == 2, f"exit code {code}, stderr {err!r}"
    assert out == "", f"stdout {out!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"stderr is not one line: {err!r}"
    line = lines[0]
    prefix = f"factsweep: error: {source}: {key}: "
    assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    message = line[len(prefix):]
    assert "allowed:" in message, f"{line!r} does not say what is allowed"
    for fragment in expects:
        assert fragment in message, f"{fragment!r} not in {line!r}"
    assert "Traceback" not in err and SECRET not in err
    return message


def check_nothing_written(folder: Path, keep: set[Path]) -> None:
    left = {p for p in folder.rglob("*")} - keep
    assert not left, f"written: {sorted(map(str, left))}"
    assert not (folder / "results").exists() and not (folder / "PWNED").exists()


def test_corpus_is_large_and_well_formed():
    assert len(CASES) >= 30
    for case in CASES:
        header(case)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_sweep_file(case, workdir, capsys):
    key, expects, overrides = header(case)
    path = place(case, workdir)
    code = main(["run", str(path), *overrides])
    out, err = capsys.readouterr()
    check_error(code, out, err, str(path), key, expects)
    check_nothing_written(workdir, {path})


@pytest.mark.parametrize("command", ["plan", "mlflow-sync"])
@pytest.mark.parametrize("stem", ["unknown_key_grid", "interp_env", "python_object_apply", "override_unknown_fixed"])
def test_other_commands_that_read_a_sweep(stem, command, workdir, capsys):
    case = HERE / "sweeps" / f"{stem}.yaml"
    key, expects, overrides = header(case)
    path = place(case, workdir)
    code = main([command, str(path), *overrides])
    out, err = capsys.readouterr()
    check_error(code, out, err, str(path), key, expects)
    check_nothing_written(workdir, {path})


NAME = ["allowed: a sweep name"]
# id: (argv, source, key, fragments); {tmp} is the tmp folder, {root} the results folder inside it.
CLI_CASES = {
    "status_dotdot": (["status", "..", "--root", "{root}"], "status", "SWEEP", ["got '..'"] + NAME),
    "status_parent_path": (["status", "../x", "--root", "{root}"], "status", "SWEEP", ["got '../x'"] + NAME),
    "status_slash": (["status", "a/b", "--root", "{root}"], "status", "SWEEP", ["got 'a/b'"] + NAME),
    "report_dotdot": (["report", "..", "--root", "{root}"], "report", "SWEEP", ["got '..'"] + NAME),
    "report_parent_path": (["report", "../../etc", "--root", "{root}"], "report", "SWEEP", ["got '../../etc'"] + NAME),
    "fit_parent_path": (["fit", "../x", "--root", "{root}"], "fit", "SWEEP", ["got '../x'"] + NAME),
    "status_trailing_newline": (["status", "x\n", "--root", "{root}"], "status", "SWEEP", ["got 'x\\n'"] + NAME),
    "query_syntax_error": (["query", "selec 1", "--root", "{root}"], "query", "SQL",
                           ["Parser Error", "allowed: DuckDB SQL"]),
    "query_unknown_table": (["query", "select * from nope", "--root", "{root}"], "query", "SQL",
                            ["nope", "allowed: DuckDB SQL"]),
    "run_missing_file": (["run", "{tmp}/missing.yaml"], "{tmp}/missing.yaml", "-",
                         ["cannot read the sweep file", "allowed: a readable YAML file"]),
    "plan_missing_file": (["plan", "{tmp}/missing.yaml"], "{tmp}/missing.yaml", "-", ["cannot read the sweep file"]),
    "plan_a_directory": (["plan", "{tmp}"], "{tmp}", "-", ["cannot read the sweep file"]),
    "fit_bootstrap_huge": (["fit", "x", "--root", "{root}", "--bootstrap", "1000000000"], "fit", "--bootstrap",
                           ["got 1000000000", "allowed: an integer in [1, 100000]"]),
    "ui_port_zero": (["ui", "--port", "0"], "ui", "--port", ["got 0", "allowed: an integer in [1, 65535]"]),
    "ui_port_out_of_range": (["ui", "--port", "70000"], "ui", "--port", ["got 70000", "[1, 65535]"]),
    "override_starting_with_dash": (["plan", "{tmp}/x.yaml", "-="], "factsweep", "arguments",
                                    ["unrecognized arguments: -=", "goes after `--`"]),
    "unknown_command": (["bogus"], "factsweep", "arguments", ["invalid choice: 'bogus'"]),
    "ui_root_typo": (["ui", "--root", "{tmp}/resluts"], "ui", "--root", ["no results folder", "resluts",
                                                                         "allowed: a folder `factsweep run` wrote"]),
}


def fill(text: str, folder: Path) -> str:
    return text.replace("{tmp}", str(folder)).replace("{root}", str(folder / "results"))


@pytest.mark.parametrize("case", list(CLI_CASES), ids=str)
def test_bad_cli_call(case, workdir, capsys):
    argv, source, key, expects = CLI_CASES[case]
    code = main([fill(a, workdir) for a in argv])
    out, err = capsys.readouterr()
    check_error(code, out, err, fill(source, workdir), key, expects)
    check_nothing_written(workdir, set())


def test_bad_query_leaves_existing_results_alone(workdir, capsys):
    """With recorded results the message lists the views, and nothing new appears in the folder."""
    from orchestrator.store import Store
    Store(workdir / "results").append("cells", "old", [{"cell_id": "c0", "experiment": "capacity"}])
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    code = main(["query", "select * from cels", "--root", str(workdir / "results")])
    out, err = capsys.readouterr()
    check_error(code, out, err, "query", "SQL", ["cels", "allowed: DuckDB SQL over the views cells"])
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


VALID = """name: mixed
experiment: capacity
fixed: {geometry: spherical, gd_epochs: 10}
grid: {method: [gd], d: [8], num_facts: [16]}
storage: {root: "@ROOT@"}
"""


@pytest.mark.parametrize("command", ["run", "plan", "mlflow-sync"])
def test_a_sweep_name_holds_one_experiment_kind(command, workdir, capsys):
    """Results of kind `synthetic` recorded under `mixed`: a `capacity` sweep of that name would mix two
    kinds in one partition. Refused before anything is written."""
    from orchestrator.store import Store
    Store(workdir / "results").append("probes", "mixed", [{"probe_id": "p0", "cell_id": "c0", "experiment": "synthetic",
                                                           "status": "ok"}])
    path = workdir / "mixed.yaml"
    path.write_text(VALID.replace("@ROOT@", str(workdir / "results")))
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    code = main([command, str(path)])
    out, err = capsys.readouterr()
    check_error(code, out, err, str(path), "experiment",
                ["got 'capacity', but sweep 'mixed' under", "holds synthetic results", "allowed: synthetic, or another"])
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before


# The same contract through a real process: the exit status is what a shell sees.
SUBPROCESS = {
    "python_object_apply": lambda tmp: (["run", str(place(HERE / "sweeps" / "python_object_apply.yaml", tmp))],
                                        f"{tmp}/python_object_apply.yaml", "line 8", ["python/object/apply:os.system"]),
    "unknown_key_grid": lambda tmp: (["plan", str(place(HERE / "sweeps" / "unknown_key_grid.yaml", tmp))],
                                     f"{tmp}/unknown_key_grid.yaml", "grid.num_fact", ["did you mean 'num_facts'"]),
    "override_interp_env": lambda tmp: (["run", str(place(HERE / "sweeps" / "override_interp_env.yaml", tmp)),
                                         "fixed.geometry=${oc.env:FACTSWEEP_SECRET}"],
                                        f"{tmp}/override_interp_env.yaml", "fixed.geometry", ["interpolations"]),
    "status_dotdot": lambda tmp: (["status", "..", "--root", str(tmp / "results")], "status", "SWEEP", NAME),
    "query_syntax_error": lambda tmp: (["query", "selec 1", "--root", str(tmp / "results")], "query", "SQL",
                                       ["allowed: DuckDB SQL"]),
}


@pytest.mark.slow  # a real interpreter per case: not in make test-fast
@pytest.mark.parametrize("case", list(SUBPROCESS), ids=str)
def test_exit_code_of_a_real_process(case, tmp_path):
    argv, source, key, expects = SUBPROCESS[case](tmp_path)
    keep = set(tmp_path.iterdir())
    env = {**os.environ, "FACTSWEEP_SECRET": SECRET,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([PYTHON, "-m", "orchestrator.cli", *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    check_error(done.returncode, done.stdout, done.stderr, source, key, expects)
    check_nothing_written(tmp_path, keep)


@pytest.mark.parametrize("value", ["cache\x1b[2J", "{tmp}/a-file"], ids=["control_char", "a_file"])
def test_a_bad_path_in_the_environment_is_one_line(value, workdir, capsys, monkeypatch):
    """A path from the environment passes the same check as one from the file (orchestrator/paths.py)."""
    (workdir / "a-file").write_text("not a folder\n")
    path = place(HERE / "sweeps" / "d_zero.yaml", workdir)
    monkeypatch.setenv("FACTSWEEP_CACHE", fill(value, workdir))
    code = main(["plan", str(path)])
    out, err = capsys.readouterr()
    check_error(code, out, err, "environment", "FACTSWEEP_CACHE", ["allowed: a"])
    check_nothing_written(workdir, {path, workdir / "a-file"})
