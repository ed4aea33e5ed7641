"""The ``factsweep`` command: run, plan, status, query, report, ui, mlflow-sync and embeddings."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import SpecError, Unavailable


def _spec(args):
    from orchestrator.spec import check_recorded_kind, load_spec
    from orchestrator.store import Store
    spec = load_spec(args.sweep, args.overrides)
    check_recorded_kind(spec, Store(spec.results_root))
    return spec


def cmd_run(args) -> int:
    spec = _spec(args)
    from orchestrator.report import write_report
    from orchestrator.runner import run_sweep
    from orchestrator.tables import text
    from orchestrator.tracking import default_uri
    from orchestrator.store import StorageError, storage_error

    try:  # results folder not writable, not a folder or full: one line, exit 1; what was recorded stays
        report = run_sweep(spec, retry_failed=args.retry_failed, address=args.address)
        print(f"{spec.name}: {report.cells_done}/{report.cells} cells done, {report.probes_run} probes run "
              f"({report.probes_failed} failed) in {report.seconds:.1f}s")
        if report.cells_failed:
            print(f"{report.cells_failed} cells wait on failed probes: see `factsweep status {spec.name}`, "
                  f"then `factsweep run {spec.source} --retry-failed`")
        if report.cells_done:
            try:
                pictures, md, table = write_report(spec.results_root, spec.name)
            except OSError as e:
                raise storage_error(Path(spec.results_root) / "reports", e) from e
            print(text(table))
            print("figures: " + ", ".join(map(str, pictures)) + f"\nreport: {md}")
    except StorageError as e:
        print(f"factsweep: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"factsweep: interrupted: {_recorded(spec)}; `factsweep run {spec.source}` again resumes from there",
              file=sys.stderr)
        return 130
    uri = spec.tracking_uri or default_uri(spec.results_root)
    print(f"MLflow: `factsweep ui` serves {uri} at http://127.0.0.1:5000")
    return 0


def _recorded(spec) -> str:
    """What a stopped run leaves: the sweep's recorded probes and finished cells."""
    from orchestrator.store import Store
    store = Store(spec.results_root)
    probes, cells = len(store.load("probes", spec.name)), len(store.load("cells", spec.name))
    return f"{probes} probes recorded, {cells} of {len(spec.cells)} cells of sweep {spec.name} done"


def cmd_plan(args) -> int:
    spec = _spec(args)
    from orchestrator.plan import build_plan, counts
    from orchestrator.store import Store
    import pandas as pd
    from orchestrator.tables import text

    plans = build_plan(spec, Store(spec.results_root))
    columns = [c for c in spec.experiment.summary_columns if c in spec.experiment.params]
    rows = [{**{c: p.config[c] for c in columns}, "state": p.state, "probes_recorded": len(p.results),
             "next": ",".join(str({k: v for k, v in q.items() if k != "probe_id"}) for q in p.next_probes)[:60]}
            for p in plans]
    print(text(pd.DataFrame(rows)))
    c = counts(plans)
    print(f"{spec.name}: {c['cells']} cells: {c['done']} done, {c['pending']} to run "
          f"({c['probes_next']} probes next round), {c['failed']} waiting on failed probes")
    return 0


def _check_name(command: str, sweep: str) -> None:
    """A SWEEP argument becomes a folder name (``sweep=<name>``, ``reports/<name>.md``): no paths."""
    from orchestrator.spec import NAME_PATTERN
    if not NAME_PATTERN.match(sweep) or ".." in sweep:
        raise SpecError(command, "SWEEP", f"got {sweep!r}; allowed: a sweep name (letters, digits, '_', '-', '.')")


def cmd_status(args) -> int:
    from orchestrator.store import Store
    _check_name("status", args.sweep)
    store = Store(args.root)
    probes, cells = store.load("probes", args.sweep), store.load("cells", args.sweep)
    if not len(probes):
        print(f"{args.sweep}: nothing recorded under {args.root}")
        return 1
    by_state = probes["status"].value_counts().to_dict()
    failed = probes[probes["status"] == "failed"]
    # A failure that a later success of the same probe replaced is already gone (newest row per probe).
    print(f"{args.sweep}: cells done {len(cells)}, cells with probes {probes['cell_id'].nunique()}, "
          f"probes ok {by_state.get('ok', 0)}, probes failed {by_state.get('failed', 0)}")
    for row in failed.head(20).to_dict("records"):
        print(f"  failed probe {row['probe_id']} of cell {row['cell_id']}: {row.get('error')}")
    return 0


def cmd_query(args) -> int:
    from orchestrator.store import Store
    from orchestrator.tables import text
    import duckdb

    con = Store(args.root).connect()
    try:
        frame = con.execute(args.sql).df()
    except duckdb.Error as e:
        views = ", ".join(r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall())
        raise SpecError("query", "SQL", f"{str(e).splitlines()[0]}; allowed: DuckDB SQL over the views "
                                        f"{views or '(none: nothing recorded under ' + str(args.root) + ')'}") from None
    print(frame.to_csv(index=False) if args.csv else text(frame), end="\n" if not args.csv else "")
    return 0


def cmd_report(args) -> int:
    from orchestrator.report import write_report
    from orchestrator.tables import text
    _check_name("report", args.sweep)
    try:
        pictures, md, table = write_report(args.root, args.sweep)
    except LookupError as e:
        raise SpecError("report", "SWEEP", str(e)) from None
    print(text(table))
    print("figures: " + ", ".join(map(str, pictures)) + f"\nreport: {md}")
    return 0


def cmd_fit(args) -> int:
    from factmlp.experiments import REGISTRY
    from orchestrator.fitting import fit_sweep
    from orchestrator.store import Store
    from orchestrator.tables import text
    _check_name("fit", args.sweep)
    store = Store(args.root)
    cells = store.load("cells", args.sweep)
    if not len(cells):
        raise SpecError("fit", "SWEEP", f"no finished cells for sweep {args.sweep!r} under {args.root}")
    fits = fit_sweep(store, args.sweep, REGISTRY[cells["experiment"].iloc[0]], n_boot=args.bootstrap)
    shown = [c for c in ("law", "method", "geometry", "d", "num_facts", "s", "s_low", "s_high", "C", "b", "p",
                         "p_low", "p_high", "r2", "n") if c in fits]
    print(text(fits[shown]) if len(fits) else "no law had enough distinct points to fit")
    return 0


def cmd_ui(args) -> int:
    from orchestrator.tracking import default_uri
    uri = args.uri or default_uri(args.root)
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if not mlflow:
        raise SpecError("ui", "mlflow", "the mlflow command is not installed; allowed: pip install mlflow")
    artifacts = Path(args.root).resolve() / "mlartifacts"
    command = [mlflow, "server", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port),
               "--workers", "1", "--artifacts-destination", str(artifacts)]
    print(f"MLflow UI for {uri} at http://{args.host}:{args.port}  (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def cmd_sync(args) -> int:
    spec = _spec(args)
    from orchestrator.lock import SweepLock
    from orchestrator.runner import sync_tracking, tracker_for
    from orchestrator.store import StorageError, Store
    try:
        with SweepLock(spec.results_root, spec.name):  # a run of the sweep logs its own cells: not both at once
            tracker = tracker_for(spec)
            added = sync_tracking(spec, Store(spec.results_root), tracker)
    except StorageError as e:
        print(f"factsweep: error: {e}", file=sys.stderr)
        return 1
    if tracker.failed:
        return 1
    print(f"{spec.name}: {added} cells logged to {tracker.uri}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factsweep", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def with_spec(name, fn, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="sweep YAML file")
        s.add_argument("overrides", nargs="*", help="key=value overrides (OmegaConf dotlist), e.g. grid.d=[16,32]")
        s.set_defaults(fn=fn)
        return s

    run = with_spec("run", cmd_run, "run (or resume) a sweep")
    run.add_argument("--retry-failed", action="store_true", help="run failed probes again")
    run.add_argument("--address", default=None, help="Ray cluster address ('auto' on a cluster head)")
    with_spec("plan", cmd_plan, "what would run and what is already done")
    with_spec("mlflow-sync", cmd_sync, "rebuild the MLflow view of a sweep from Parquet")
    for name, fn, help_ in (("status", cmd_status, "counts of cells and probes by state"),
                            ("report", cmd_report, "figures, fits and a markdown report of a sweep"),
                            ("fit", cmd_fit, "fit the scaling laws to a sweep's cells (fits table)")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="sweep name")
        s.add_argument("--root", default="results", help="results folder")
        if name == "fit":
            s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per fit")
        s.set_defaults(fn=fn)
    q = sub.add_parser("query", help="SQL over the Parquet tables (views cells, probes, ...)")
    q.add_argument("sql")
    q.add_argument("--csv", action="store_true", help="print CSV")
    q.add_argument("--root", default="results")
    q.set_defaults(fn=cmd_query)
    ui = sub.add_parser("ui", help="MLflow UI on 127.0.0.1")
    ui.add_argument("--root", default="results")
    ui.add_argument("--uri", default=None, help="tracking URI (default: sqlite under the results folder)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(fn=cmd_ui)
    from orchestrator.embeddings_cli import add_parser as add_embeddings
    add_embeddings(sub)  # `factsweep embeddings capture|show`
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as e:
        print(f"factsweep: error: {e}", file=sys.stderr)
        return 2
    except Unavailable as e:
        print(f"factsweep: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # `run` says more; any other command has nothing half-done to report
        print("factsweep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
