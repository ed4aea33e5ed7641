"""Results folder not writable, not a folder, or full: one clear line, no partial file, and a later
run completes the sweep with no duplicates.

Every condition is real, for root and non-root alike:
- not writable: the folder is chmod 555 and the CLI runs without CAP_DAC_OVERRIDE (``setpriv`` drops
  it when the tests run as root, where permissions alone stop nothing);
- read-only: a read-only bind mount, in a user and mount namespace (``unshare``);
- not a folder: ``storage.root`` names a regular file;
- disk full: a 4 MiB tmpfs mounted in a user and mount namespace, filled by a real file; the driver
  writes through ``/proc/<pid>/root`` of the process holding the namespace, so the kernel answers
  ENOSPC at the store's own writes.
A case whose condition this machine cannot produce is skipped, naming why. All sweeps of the module
log to one MLflow database (creating one costs a second of CPU).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG
from servers import free_port
from sweep_files import synthetic_sweep

pytestmark = pytest.mark.slow  # real CLI processes on read-only, full and fake folders: not in make test-fast


SWEEP = """
name: {name}
experiment: synthetic
fixed: {{num_probes: {probes}, sleep: {sleep}}}
grid: {{seed: [0, 1]}}
packing: {{probes_per_task: 1}}
tracking: {{uri: 'sqlite:///{tracking}'}}
storage: {{root: '{root}'}}
"""
# Exits 0 only when opening a file for writing in argv[1] fails with the errno named in argv[2].
EXPECT_ERRNO = ("import errno, sys\ntry:\n    open(sys.argv[1] + '/.probe', 'w')\nexcept OSError as e:\n"
                "    sys.exit(0 if e.errno == getattr(errno, sys.argv[2]) else 3)\nsys.exit(4)")
USERNS = ["unshare", "--user", "--map-root-user", "--mount"]


def sweep_file(folder: Path, name: str, root: Path, tracking: Path, probes: int = 4, sleep: float = 0.0) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SWEEP.format(name=name, probes=probes, sleep=sleep, root=root, tracking=tracking))
    return path


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    """The module's MLflow database, and a results folder holding one finished sweep, ``earlier``."""
    folder = tmp_path_factory.mktemp("storage_errors")
    tracking, template = folder / "mlflow.db", folder / "earlier-results"
    report = run_sweep(load_spec(sweep_file(folder, "earlier", template, tracking)), progress=False)
    assert report.cells_done == 2
    return tracking, template


def finish_earlier(shared, root: Path) -> pd.DataFrame:
    """A finished sweep already in the results folder: it must stay readable whatever happens next."""
    shutil.copytree(shared[1], root)
    return Store(root).load("probes", "earlier")


def mlflow_experiment(tracking: Path, name: str):
    return MlflowClient(f"sqlite:///{tracking}").get_experiment_by_name(name)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``, hidden ones included, with its size and modification time."""
    return {str(Path(d, f).relative_to(root)): (os.stat(Path(d, f)).st_size, os.stat(Path(d, f)).st_mtime_ns)
            for d, _, files in os.walk(root) for f in files}


def cli(args: list[str], prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def assert_one_line(stderr: str, root: Path, problem: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert re.fullmatch(rf"factsweep: error: results: cannot write {re.escape(str(root))}\S*: {problem}; \S.*",
                        lines[0]), lines[0]
    return lines[0]


def assert_fails_fast(path: Path, tracking: Path, root: Path, problem: str, prefix: list[str] = ()) -> None:
    """``factsweep run`` stops before Ray and MLflow: a dead Ray address and an absent experiment prove it."""
    before = tree(root) if root.is_dir() else None
    result = cli(["run", str(path), "--address", f"127.0.0.1:{free_port()}"], prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_one_line(result.stderr, root, problem)
    assert mlflow_experiment(tracking, path.stem) is None, "MLflow was written before the results folder was checked"
    if before is not None:
        assert tree(root) == before, "the failed run left something in the results folder"


def assert_recovers(path: Path, tracking: Path, root: Path, capsys, earlier: pd.DataFrame | None, recorded: int = 0,
                    total: int = 8) -> int:
    """With the condition gone, ``run`` completes the sweep, redoes nothing recorded and duplicates nothing."""
    name = path.stem
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    run = re.search(r"(\d+)/2 cells done, (\d+) probes run \(0 failed\)", out)
    assert run and run.group(1) == "2" and int(run.group(2)) == total - recorded, out
    probes = Store(root).load("probes", name)
    assert len(probes) == total and probes["probe_id"].is_unique and (probes["status"] == "ok").all()
    if earlier is not None:
        pd.testing.assert_frame_equal(Store(root).load("probes", "earlier"), earlier)
    client = MlflowClient(f"sqlite:///{tracking}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(Store(root).load("cells", name)["cell_id"])
    return int(run.group(2))


def test_unwritable_root_fails_fast_and_recovers(shared, tmp_path, capsys):
    root, tracking = tmp_path / "results", shared[0]
    earlier = finish_earlier(shared, root)
    path = sweep_file(tmp_path, "unwritable", root, tracking)
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE, so no folder is unwritable")
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        check = subprocess.run([*prefix, sys.executable, "-c", EXPECT_ERRNO, str(root), "EACCES"])
        assert check.returncode == 0, "the folder is still writable: the test would prove nothing"
        assert_fails_fast(path, tracking, root, "Permission denied", prefix)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert_recovers(path, tracking, root, capsys, earlier)


def test_read_only_root_fails_fast_and_recovers(shared, tmp_path, capsys):
    root, tracking = tmp_path / "results", shared[0]
    earlier = finish_earlier(shared, root)
    path = sweep_file(tmp_path, "readonly", root, tracking)
    prefix = [*USERNS, "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',
              str(root)]
    if not shutil.which("unshare") or subprocess.run([*prefix, sys.executable, "-c", EXPECT_ERRNO, str(root), "EROFS"],
                                                     capture_output=True).returncode:
        pytest.skip("no user and mount namespaces here: cannot make a read-only bind mount")
    assert_fails_fast(path, tracking, root, "Read-only file system", prefix)
    assert_recovers(path, tracking, root, capsys, earlier)


def test_root_that_is_a_file_fails_fast_and_recovers(shared, tmp_path, capsys):
    """In-process (``main``), to spare the CPU of one more CLI start; the other cases run the real command."""
    root, tracking = tmp_path / "results", shared[0]
    root.write_text("not a folder\n")
    path = sweep_file(tmp_path, "notafolder", root, tracking)
    assert main(["run", str(path)]) == 1
    assert_one_line(capsys.readouterr().err, root, "Not a directory")
    assert mlflow_experiment(tracking, "notafolder") is None and root.read_text() == "not a folder\n"
    root.unlink()
    assert_recovers(path, tracking, root, capsys, None)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs in its own user and mount namespace, reached through /proc/<pid>/root of its holder."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if not shutil.which("unshare"):
        pytest.skip("no unshare: cannot mount a small file system")
    holder = subprocess.Popen([*USERNS, "sh", "-c", 'mount -t tmpfs -o size=4m factsweep-full "$0" && echo mounted '
                               '&& exec sleep 600', str(mountpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        if holder.stdout.readline().strip() != "mounted":
            pytest.skip(f"no user and mount namespaces here: {holder.stderr.read().strip()}")
        disk = Path(f"/proc/{holder.pid}/root") / mountpoint.relative_to("/")
        stat = os.statvfs(disk)
        assert stat.f_blocks * stat.f_frsize == 4 << 20, "not the small file system"
        yield disk
    finally:
        holder.kill()
        holder.wait()


def fill(disk: Path, leave: int) -> Path:
    """A real file that takes all but ``leave`` bytes of the file system."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    stat = os.statvfs(disk)
    with open(filler, "wb") as fh:
        fh.write(bytes(stat.f_bavail * stat.f_frsize - leave))
        os.fsync(fh.fileno())
    return filler


def test_disk_full_fails_fast_then_mid_sweep_and_recovers(shared, tmp_path, capfd, small_disk):
    """In-process (``main``, output captured at the file descriptors, Ray's included): a CLI start would
    cost a torch import and two fresh Ray workers; the cases above run the real command."""
    root, tracking = small_disk / "results", shared[0]
    earlier = finish_earlier(shared, root)
    path = sweep_file(tmp_path, "full", root, tracking, probes=6, sleep=0.02)
    total = 12

    # Full before the run: stopped by the check, before Ray and before MLflow.
    fill(small_disk, 0)
    before = tree(root)
    capfd.readouterr()
    assert main(["run", str(path)]) == 1
    assert_one_line(capfd.readouterr().err, root, "No space left on device")
    assert tree(root) == before and mlflow_experiment(tracking, "full") is None

    # Full part-way: a few fragments fit, then the kernel answers ENOSPC to the store's write.
    fill(small_disk, 48 << 10)  # 32 KiB for fragments, 16 KiB for the lock files (the driver's, one per cell) and the epoch
    assert main(["run", str(path)]) == 1
    error = assert_one_line(capfd.readouterr().err, root, "No space left on device")
    # MLflow's artifact store (the sweep run's resolved sweep file, written before the disk filled) is MLflow's;
    # locks/<sweep>.epoch is the lock's epoch counter (orchestrator/lock.py), written whole before any row.
    leftovers = [f for f in tree(root) if not f.startswith("mlartifacts/")
                 and (Path(f).name.startswith(".") or not f.endswith((".parquet", ".md", ".epoch")))]
    assert not leftovers, f"temporary or partial files left behind: {leftovers}"
    store = Store(root)
    raw = pd.concat([pq.read_table(p).to_pandas() for p in store.fragments("probes", "full")], ignore_index=True)
    assert 0 < len(raw) < total and raw["probe_id"].is_unique, len(raw)
    pd.testing.assert_frame_equal(store.load("probes", "earlier"), earlier)
    client = MlflowClient(f"sqlite:///{tracking}")
    experiment = client.get_experiment_by_name("full").experiment_id
    parents = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")  # the sweep run
    assert [r.info.status for r in parents] == ["FAILED"]
    cells = store.load("cells", "full")
    runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    logged = [r.data.tags[CELL_TAG] for r in runs]
    assert set(logged) <= set(cells["cell_id"] if len(cells) else []), "MLflow has a cell that Parquet lacks"

    # Space freed: the same command finishes the sweep, redoing nothing that was recorded.
    (small_disk / "filler").unlink()
    redone = assert_recovers(path, tracking, root, capfd, earlier, recorded=len(raw), total=total)
    with capfd.disabled():
        print(f"\ndisk full mid-sweep: {error}\ndisk full mid-sweep: {len(raw)} of {total} probes recorded before "
              f"ENOSPC, {redone} run after, 0 duplicates")


# Inside the namespace that mounts the small disk, before the real `factsweep run`: MLflow's schema on
# a full disk, then with space, then a disk that fills part-way through the sweep.
SCHEMA_ON_A_FULL_DISK = """
import json, logging, os, sys
from pathlib import Path
from orchestrator.tracking import Tracker, default_uri

disk, root = Path(sys.argv[1]), Path(sys.argv[1]) / "results"
def fill(leave):
    stat = os.statvfs(disk)
    with open(disk / "filler", "wb") as fh:
        fh.write(bytes(stat.f_bavail * stat.f_frsize - leave))
logging.basicConfig(stream=sys.stdout, format="%(message)s")
fill(300 << 10)  # room for a sweep's fragments, not for MLflow's ~1 MB schema
full = Tracker(default_uri(root), "first", root)
full.sweep_run()
left = sorted(p.name for p in root.iterdir()) if root.exists() else []
(disk / "filler").unlink()
later = Tracker(default_uri(root), "first", root)
later.sweep_run()
later.finish()
fill(48 << 10)
print(json.dumps({"failed_when_full": full.failed, "left_when_full": left, "failed_later": later.failed}))
"""


def test_mlflow_db_on_a_disk_that_fills(ray_session, tmp_path):
    """``mlflow.db`` in the results folder (where it is by default) on a 4 MiB disk, in one user and mount
    namespace: SQLite resolves /proc/<pid>/root paths out of it, so driver and MLflow run inside (the
    driver joins the test session's Ray rather than starting its own).
    Full while MLflow builds its schema: one warning, no half-made database (one would break every later
    run). Full part-way through a sweep: one line per condition, none of MLflow's own output."""
    disk = tmp_path / "disk"
    disk.mkdir()
    path = tmp_path / "midway.yaml"
    synthetic_sweep(path, "midway", disk / "results", probes=40, sleep=0.02, probes_per_task=1)
    steps = (f'mount -t tmpfs -o size=4m factsweep-full "$0" && "$1" -c "$2" "$0" > "$3" && '
             f'"$1" -m orchestrator.cli run "$4" --address "$7" 2> "$5"; echo $? > "$6"')
    command = [*USERNS, "sh", "-c", steps, str(disk), sys.executable, SCHEMA_ON_A_FULL_DISK, str(tmp_path / "schema"),
               str(path), str(tmp_path / "stderr"), str(tmp_path / "rc"), ray_session.get_runtime_context().gcs_address]
    if not shutil.which("unshare") or subprocess.run([*USERNS, "true"], capture_output=True).returncode:
        pytest.skip("no user and mount namespaces here: cannot mount a small file system")
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    said = (tmp_path / "schema").read_text()
    assert done.returncode == 0 and said.rstrip().endswith("}"), said + done.stdout + done.stderr
    *warnings, facts = said.splitlines()
    facts = json.loads(facts)
    assert facts["failed_when_full"] and len(warnings) == 1 and "full" in warnings[0], (facts, warnings)
    assert facts["left_when_full"] == [], "a half-made mlflow.db (or its temporary file) was left behind"
    assert not facts["failed_later"], "with space freed, MLflow did not work"
    lines = [line for line in (tmp_path / "stderr").read_text().splitlines() if line.strip()]
    assert (tmp_path / "rc").read_text().strip() == "1", lines
    assert lines[-1].startswith(f"factsweep: error: results: cannot write {disk}/results"), lines
    assert len(lines) <= 2 and all(line.startswith("MLflow") for line in lines[:-1]), lines
    print(f"\nmlflow.db on a full disk: schema: {warnings[0]}\nmid-sweep: {len(lines)} lines: {lines}")
