"""The ``factsweep`` command: run, plan, status, query, report, fit, extra-cells, ui, mlflow-sync, and
the commands other packages add through the ``factsweep.commands`` entry points (factmlp's
``embeddings``)."""
from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path

from orchestrator.errors import SpecError, Unavailable
from orchestrator.redact import redact

COMMANDS = "factsweep.commands"  # entry points: add_parser(subparsers) of another package's command


def _spec(args):
    from orchestrator.paths import check_environment
    from orchestrator.spec import check_recorded_kind, load_spec
    from orchestrator.store import Store
    check_environment("FACTSWEEP_CACHE", folder=True)  # where llm_* cells keep their captures
    spec = load_spec(args.sweep, args.overrides)
    check_recorded_kind(spec, Store(spec.results_root))
    return spec


def _is_file(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or Path(target).is_file()


def _scope(command: str, args):
    """The cells a command covers: those a sweep file defines, or every cell under a bare name."""
    from orchestrator.paths import check_path
    from orchestrator.scope import Scope
    from orchestrator.spec import load_spec
    if args.root is not None:
        check_path(command, "--root", args.root, folder=True)
    if _is_file(args.sweep):
        overrides = list(args.overrides) + ([f"storage.root={args.root}"] if args.root else [])
        return Scope.of_spec(load_spec(args.sweep, overrides))
    _check_name(command, args.sweep)
    if args.overrides:
        raise SpecError(command, "overrides", f"got {' '.join(args.overrides)!r} with a sweep name; allowed: "
                                              "overrides after a sweep file (SWEEP.yaml key=value)")
    try:
        return Scope.of_name(args.root or "results", args.sweep)
    except LookupError as e:  # UnknownResults, or one name shared by two experiment kinds
        raise SpecError(command, "SWEEP", str(e)) from None


def _others_line(scope, store) -> str | None:
    others = scope.others(store)
    if not len(others) or scope.spec is None:
        return None
    return (f"{len(others)} other cell(s) recorded under the name {scope.sweep!r} are not in this file and not "
            f"shown: `factsweep extra-cells {scope.spec.source}` lists them")


def _print_report(scope, *, log: bool = True) -> None:
    from orchestrator.report import write_report
    from orchestrator.runner import tracker_for
    from orchestrator.store import Store
    from orchestrator.render import text
    from orchestrator.tracking import Tracker, default_uri
    pictures, md, table = write_report(scope)
    if log:  # the sweep run's artifacts follow the newest report
        tracker = tracker_for(scope.spec) if scope.spec else Tracker(default_uri(scope.root), scope.sweep, scope.root)
        cells = scope.load(Store(scope.root), "cells")
        tracker.log_report([md] + pictures, cells, scope.varying(cells))
    print(f"{scope.sweep}: {scope.label}")
    print(text(table))
    line = _others_line(scope, Store(scope.root))
    if line:
        print(line)
    print("figures and tables: " + ", ".join(map(str, pictures)) + f"\nreport: {md}")


def _executor(args) -> str | None:
    """The executor named on the command line (``--inline`` is ``--executor inline``), checked against
    the installed ones; None leaves the file's ``cluster.executor``."""
    from orchestrator.executors import check_name
    if args.inline and args.executor not in (None, "inline"):
        raise SpecError("run", "--executor", f"got {args.executor!r} with --inline; allowed: one of the two "
                                             "(--inline is --executor inline)")
    name = "inline" if args.inline else args.executor
    return None if name is None else check_name("run", "--executor", name)


def cmd_run(args) -> int:
    executor = _executor(args)
    spec = _spec(args)
    from orchestrator.runner import run_sweep
    from orchestrator.scope import Scope
    from orchestrator.store import StorageError, storage_error

    try:  # results folder not writable, not a folder or full: one line, exit 1; what was recorded stays
        report = run_sweep(spec, retry_failed=args.retry_failed, address=args.address, executor=executor)
        print(f"{spec.name}: {report.cells_done}/{report.cells} cells done, {report.probes_run} probes run "
              f"({report.probes_failed} failed) in {report.seconds:.1f}s")
        if report.cells_failed:
            print(f"{report.cells_failed} cells wait on failed probes: see `factsweep status {spec.source}`, "
                  f"then `{rerun_command(spec, args, '--retry-failed')}`")
        if report.cells_done:
            try:
                _print_report(Scope.of_spec(spec), log=report.tracking_ok)
            except OSError as e:
                raise storage_error(Path(spec.results_root) / "reports", e) from e
    except StorageError as e:
        print(f"factsweep: error: {redact(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"factsweep: interrupted: {_recorded(spec)}; `{rerun_command(spec, args)}` again resumes from there",
              file=sys.stderr)
        return 130
    print(f"MLflow: {ui_hint(spec)}")
    return 0


def rerun_command(spec, args, *flags: str) -> str:
    """The `factsweep run` line that resumes this invocation: its file, every override and where it ran
    (--inline or --executor, --address), quoted for a POSIX shell, so pasting it runs the same cells."""
    inline, address = getattr(args, "inline", False), getattr(args, "address", None)  # `plan` has neither
    executor = getattr(args, "executor", None)
    where = ["--inline"] if inline else (["--executor", executor] if executor else []) + \
        (["--address", address] if address else [])
    return shlex.join(["factsweep", "run", spec.source, *spec.overrides, *where, *flags])


def ui_hint(spec) -> str:
    """Where this sweep's MLflow runs are: the tracking server, or the exact `factsweep ui` call."""
    uri = redact(spec.tracking_uri) if spec.tracking_uri else None  # credentials are never printed
    from orchestrator.dashboard import home_url
    if uri and uri.startswith(("http://", "https://")):
        return f"the runs are on the tracking server {home_url(uri)}"
    if uri:
        return f"`factsweep ui --uri {uri}` serves the runs at {home_url('http://127.0.0.1:5000')}"
    root = "" if Path(spec.results_root) == Path("results") else f" --root {spec.results_root}"
    return f"`factsweep ui{root}` serves the runs at {home_url('http://127.0.0.1:5000')}"


def _predicted(prediction) -> str:
    return "" if prediction is None else f"{prediction.value:.1f} ±{prediction.spread:.0%}"


def _plan_rows(scope, plans) -> list[dict]:
    from orchestrator import cell_columns
    keys = cell_columns.keys(scope.experiment, scope.spec.varying)
    predicts = scope.spec.predict and scope.experiment.predict is not None
    return [{**{c: p.config.get(c) for c in keys}, "state": p.state, "probes_recorded": len(p.results),
             **({"predicted": _predicted(p.prediction)} if predicts else {}),
             "next": ",".join(str({k: v for k, v in q.items() if k != "probe_id"}) for q in p.next_probes)[:60]}
            for p in plans]


def _recorded(spec) -> str:
    """What a stopped run leaves: the sweep file's recorded probes and finished cells."""
    from orchestrator.scope import Scope
    from orchestrator.store import Store
    scope, store = Scope.of_spec(spec), Store(spec.results_root)
    probes, cells = len(scope.load(store, "probes")), len(scope.load(store, "cells"))
    return f"{probes} probes recorded, {cells} of {len(spec.cells)} cells of sweep {spec.name} done"


def cmd_plan(args) -> int:
    spec = _spec(args)
    from orchestrator.plan import build_plan, counts
    from orchestrator.scope import Scope
    from orchestrator.store import Store
    import pandas as pd
    from orchestrator.render import text

    from orchestrator.migrate import adoptable, check_schema_versions
    store = Store(spec.results_root)
    check_schema_versions(spec, store)
    adopting = adoptable(spec, store)
    scope = Scope.of_spec(spec)
    plans = build_plan(spec, store, scope.load(store, "cells").to_dict("records"))  # with today's predictions
    print(text(pd.DataFrame(_plan_rows(scope, plans))))
    c = counts(plans)
    print(f"{spec.name}: {c['cells']} cells: {c['done']} done, {c['pending']} to run "
          f"({c['probes_next']} probes next round), {c['failed']} waiting on failed probes")
    if adopting:
        print(f"{len(adopting)} cell(s) recorded by an older factsweep under other cell ids are these cells with the "
              f"options added since at their defaults: `{rerun_command(spec, args)}` adopts them (nothing re-run)")
    else:
        line = _others_line(scope, store)
        if line:
            print(line)
    _print_plan_warnings(spec, plans)
    return 0


def _print_plan_warnings(spec, plans) -> None:
    """The experiment's warnings on cells still to run, one line per distinct warning with its cell count."""
    warn = spec.experiment.plan_warning
    if warn is None:
        return
    found: dict[str, int] = {}
    for plan in plans:
        if plan.state != "done":
            text = warn(plan.config)
            if text:
                found[text] = found.get(text, 0) + 1
    for text, n in found.items():
        print(f"factsweep: warning: {text} ({n} cell{'s' if n > 1 else ''})")


def _check_name(command: str, sweep: str) -> None:
    """A SWEEP argument becomes a folder name (``sweep=<name>``, ``reports/<name>.md``): no paths."""
    from orchestrator.spec import NAME_PATTERN
    if not NAME_PATTERN.match(sweep) or ".." in sweep:
        raise SpecError(command, "SWEEP", f"got {sweep!r}; allowed: a sweep name (letters, digits, '_', '-', '.') "
                                          "or a sweep file (SWEEP.yaml)")


def cmd_status(args) -> int:
    from orchestrator.store import Store
    scope = _scope("status", args)
    store = Store(scope.root)
    probes, cells = scope.load(store, "probes"), scope.load(store, "cells")
    print(f"{scope.sweep}: {scope.label}")
    if not len(probes):
        print(f"{scope.sweep}: nothing recorded for these cells under {scope.root}")
        return 1
    by_state = probes["status"].value_counts().to_dict()
    failed = probes[probes["status"] == "failed"]
    # A failure that a later success of the same probe replaced is already gone (newest row per probe).
    defined = f" of {len(scope.cell_ids)}" if scope.cell_ids is not None else ""
    print(f"{scope.sweep}: cells done {len(cells)}{defined}, cells with probes {probes['cell_id'].nunique()}, "
          f"probes ok {by_state.get('ok', 0)}, probes failed {by_state.get('failed', 0)}")
    for row in failed.head(20).to_dict("records"):
        print(f"  failed probe {row['probe_id']} of cell {row['cell_id']}: {row.get('error')}")
    line = _others_line(scope, store)
    if line:
        print(line)
    return 0


def cmd_extra_cells(args) -> int:
    """List (and with --move-aside, set aside) cells recorded under the name that the file does not define."""
    spec = _spec(args)
    if args.move_aside:  # rewrites the sweep's tables: not while a run or a sync appends to them
        from orchestrator.lease import sweep_lease
        from orchestrator.store import StorageError
        try:
            with sweep_lease(spec.results_root, spec.name):  # the flock of a folder, the lease of an object store
                return _extra_cells(spec, args)
        except StorageError as e:
            print(f"factsweep: error: {redact(str(e))}", file=sys.stderr)
            return 1
    return _extra_cells(spec, args)


def _extra_cells(spec, args) -> int:
    from orchestrator import cell_columns
    from orchestrator.scope import Scope
    from orchestrator.spec import varying_keys
    from orchestrator.store import Store
    from orchestrator.render import text
    scope, store = Scope.of_spec(spec), Store(spec.results_root)
    others = scope.others(store)
    if not len(others):
        print(f"{spec.name}: every cell recorded under this name is defined by {spec.source}")
        return 0
    params = cell_columns.params_in(spec.experiment, others)
    keys = list(varying_keys(spec.cells + others[params].to_dict("records"), params))  # what tells them apart
    shown = ["cell_id"] + keys + [c for c in cell_columns.PROVENANCE if c in others]
    print(text(others[shown].sort_values(keys or ["cell_id"]).reset_index(drop=True)))
    if not args.move_aside:
        print(f"{spec.name}: {len(others)} cell(s) recorded under this name are not defined by {spec.source}; "
              "`--move-aside` moves their rows to " + str(store.where("set_aside")))
        return 0
    moved = {t: store.set_aside(t, spec.name, set(others["cell_id"])) for t in ("probes", "cells")}
    print(f"{spec.name}: moved {moved['cells']} cell rows and {moved['probes']} probe rows to "
          f"{store.where('set_aside')}")
    return 0


def cmd_report(args) -> int:
    from orchestrator.report import NothingToReport
    scope = _scope("report", args)
    try:
        _print_report(scope)
    except NothingToReport as e:
        raise SpecError("report", "SWEEP", f"{e}; allowed: a sweep with finished cells") from None
    return 0


MAX_BOOTSTRAP = 100_000  # 100x the default: a bound on the time a fit can take


def cmd_fit(args) -> int:
    from orchestrator.fitting import fit_scope
    from orchestrator.report import fits_section
    from orchestrator.store import Store
    if not 1 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise SpecError("fit", "--bootstrap", f"got {args.bootstrap}; allowed: an integer in [1, {MAX_BOOTSTRAP}] "
                                              "(resamples per fit)")
    scope = _scope("fit", args)
    laws = fit_scope(Store(scope.root), scope, n_boot=args.bootstrap)
    print(f"{scope.sweep}: {scope.label}")
    print("\n\n".join(fits_section(laws)) if laws else "no law had enough distinct points to fit")
    return 0


def cmd_query(args) -> int:
    from orchestrator.store import Store
    from orchestrator.render import text
    import duckdb
    from orchestrator.paths import check_path

    check_path("query", "--root", args.root, folder=True)
    if (args.sql is None) == (args.describe is None):
        raise SpecError("query", "SQL", "give SQL or --describe TABLE, not both or neither; allowed: "
                                        "factsweep query \"select ...\" or factsweep query --describe cells")
    con = Store(args.root).connect()
    if args.describe is not None:
        from orchestrator.schema import describe
        frame = describe(args.describe, con)
        print(frame.to_csv(index=False) if args.csv else text(frame), end="\n" if not args.csv else "")
        return 0
    try:
        frame = con.execute(args.sql).df()
    except duckdb.Error as e:
        views = ", ".join(r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall())
        raise SpecError("query", "SQL", f"{str(e).splitlines()[0]}; allowed: DuckDB SQL over the views "
                                        f"{views or '(none: nothing recorded under ' + str(args.root) + ')'}") from None
    print(frame.to_csv(index=False) if args.csv else text(frame), end="\n" if not args.csv else "")
    return 0


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_ui(args) -> int:
    from orchestrator.tracking import default_uri
    from orchestrator.ui import UiError, serve
    if not 1 <= args.port <= 65535:
        raise SpecError("ui", "--port", f"got {args.port}; allowed: an integer in [1, 65535] (default 5000)")
    from orchestrator.paths import check_path
    check_path("ui", "--root", args.root, folder=True)
    if args.uri is None and not Path(args.root).is_dir():  # a typo must not create an empty store
        raise SpecError("ui", "--root", f"no results folder {args.root}; allowed: a folder `factsweep run` wrote "
                                        "(the sweep's storage.root), or --uri of a tracking store")
    if args.host not in LOOPBACK:
        print(f"factsweep: warning: ui: --host {args.host} makes the MLflow server, which has no authentication, "
              "reachable from the network: anyone who can reach this port can read and change the runs",
              file=sys.stderr)
    uri = args.uri or default_uri(args.root)
    try:
        return serve(uri, Path(args.root).resolve() / "mlartifacts", args.host, args.port)
    except UiError as e:
        print(f"factsweep: error: ui: {e}", file=sys.stderr)
        return 1


def cmd_sync(args) -> int:
    spec = _spec(args)
    from orchestrator.lease import sweep_lease
    from orchestrator.runner import sync_tracking, tracker_for
    from orchestrator.store import StorageError, Store
    try:
        with sweep_lease(spec.results_root, spec.name):  # a run of the sweep logs its own cells: not both at once
            tracker = tracker_for(spec)
            added = sync_tracking(spec, Store(spec.results_root), tracker)
    except StorageError as e:
        print(f"factsweep: error: {redact(str(e))}", file=sys.stderr)
        return 1
    if tracker.failed:
        return 1
    print(f"{spec.name}: {added} cells logged to {redact(tracker.uri)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, as every other error (it printed the usage first: an
    override that starts with '-' took four lines)."""

    def error(self, message: str):
        hint = " (an override that starts with '-' goes after `--`)" if "unrecognized" in message else ""
        line = SpecError(self.prog, "arguments", f"{message}; allowed: what `{self.prog} --help` lists{hint}")
        self.exit(2, f"factsweep: error: {redact(str(line))}\n")


class _Intermixed(_Parser):
    """A subcommand whose flags may come anywhere on the line: ``run FILE --inline k=v`` (plain
    argparse stops filling the overrides at the first flag and refuses what follows it)."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        nested = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._actions)
        if self._inside or nested:  # its own two passes call back here; a parser of subcommands parses plainly
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="factsweep", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Intermixed)

    def with_spec(name, fn, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="sweep YAML file")
        s.add_argument("overrides", nargs="*", help="key=value overrides (OmegaConf dotlist), e.g. grid.d=[16,32]")
        s.set_defaults(fn=fn)
        return s

    run = with_spec("run", cmd_run, "run (or resume) a sweep")
    run.add_argument("--retry-failed", action="store_true", help="run failed probes again")
    run.add_argument("--address", default=None, help="Ray cluster address ('auto' on a cluster head)")
    run.add_argument("--executor", default=None, metavar="NAME",
                     help="where the probes run: ray, inline (this process, no Ray), debug (inline, a probe's "
                          "exception stops the run with its traceback), or another installed executor "
                          "(default: the file's cluster.executor, else ray)")
    run.add_argument("--inline", action="store_true", help="run the probes in this process, without Ray "
                                                           "(--executor inline)")
    with_spec("plan", cmd_plan, "what would run and what is already done")
    with_spec("mlflow-sync", cmd_sync, "rebuild the MLflow view of a sweep from Parquet")
    extra = with_spec("extra-cells", cmd_extra_cells,
                      "list cells recorded under the sweep's name that the file does not define")
    extra.add_argument("--move-aside", action="store_true",
                       help="move their rows out of the tables into <root>/set_aside (nothing is deleted)")
    for name, fn, help_ in (("status", cmd_status, "counts of cells and probes by state"),
                            ("report", cmd_report, "figures, fits and a markdown report of a sweep"),
                            ("fit", cmd_fit, "fit the scaling laws to a sweep's cells (fits table)")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="a sweep file (its cells only) or a sweep name (every cell recorded under it)")
        s.add_argument("overrides", nargs="*", help="key=value overrides of the sweep file")
        s.add_argument("--root", default=None, help="results folder (default: the file's storage.root, or results)")
        if name == "fit":
            s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per fit")
        s.set_defaults(fn=fn)
    q = sub.add_parser("query", help="SQL over the Parquet tables (views cells, probes, ...)")
    q.add_argument("sql", nargs="?", help="DuckDB SQL (omit with --describe)")
    q.add_argument("--describe", metavar="TABLE", help="the table's columns: type and meaning (docs/schema.md)")
    q.add_argument("--csv", action="store_true", help="print CSV")
    q.add_argument("--root", default="results")
    q.set_defaults(fn=cmd_query)
    ui = sub.add_parser("ui", help="MLflow UI on 127.0.0.1")
    ui.add_argument("--root", default="results")
    ui.add_argument("--uri", default=None, help="tracking URI (default: sqlite under the results folder)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(fn=cmd_ui)
    for command in entry_points(group=COMMANDS):  # e.g. `factsweep embeddings capture|show` from factmlp
        command.load()(sub)
    return p


class _Output:
    """stdout that a closed pipe (`| head`), a full device (`> /dev/full`) or a closed descriptor cannot
    stop: the first failed write drops the rest of the output (the descriptor is pointed at /dev/null, so
    Python's last flush cannot fail either) and the command goes on; ``lost`` says why."""

    def __init__(self, stream, lost: str | None = None):
        self.stream, self.lost = stream, lost

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self.stream.write(text)
            except UnicodeError:  # a character the stream cannot encode is a bug to see, not a closed pipe
                raise
            except (OSError, ValueError) as e:  # ValueError: a stream closed under us
                self._lose(e)
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as e:
                self._lose(e)

    def isatty(self) -> bool:
        try:
            return self.lost is None and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def _lose(self, error: Exception) -> None:
        self.lost = getattr(error, "strerror", None) or str(error) or type(error).__name__
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _standard_streams() -> None:
    """A descriptor 0, 1 or 2 closed by the caller (`factsweep run X >&-`) is opened on /dev/null, so no
    file this process opens (a lock, a fragment) can become its stdout, and output is dropped, not fatal."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        setattr(sys, name, _Output(open(os.devnull, "w"), f"{name} is closed") if stream is None
                else stream if isinstance(stream, _Output) else _Output(stream))


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error, already printed on one line (2)
        return e.code if isinstance(e.code, int) else 2
    _standard_streams()
    out, err = sys.stdout, sys.stderr
    try:
        code = args.fn(args)
        if out.lost and args.command in ("run", "mlflow-sync"):  # the sweep went on: say so, where it can be seen
            print(f"factsweep: warning: output dropped ({out.lost}); the command ran to the end (exit {code}): "
                  f"`factsweep status` shows what was recorded", file=sys.stderr)
        return code
    except SpecError as e:
        print(f"factsweep: error: {redact(str(e))}", file=sys.stderr)
        return 2
    except ValueError as e:  # a plugin command's usage error: source, key and message, like a SpecError
        if not all(hasattr(e, a) for a in ("source", "key", "message")):
            raise
        print(f"factsweep: error: {redact(str(SpecError(e.source, e.key, e.message)))}", file=sys.stderr)
        return 2
    except Unavailable as e:
        print(f"factsweep: error: {redact(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # `run` says more; any other command has nothing half-done to report
        print("factsweep: interrupted", file=sys.stderr)
        return 130
    finally:
        for name, stream in (("stdout", out), ("stderr", err)):
            if getattr(sys, name) is stream:
                stream.flush()
                setattr(sys, name, stream.stream)  # a caller (a test, a notebook) gets its own stream back


if __name__ == "__main__":
    sys.exit(main())
