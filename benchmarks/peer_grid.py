"""The revised paper's own GD capacity grid, searched with the default early stop and with the full
recipe (``search.early_stop: false``), in one run, same code otherwise (factsweep through Ray on
this machine's cores).

Grid (the peer's): GD, 10k epochs, lr 1e-3, threshold 1, spherical, tied, permutation; d = 32 with
F ∈ {64, 128, 256, 512} and d = 64 with F ∈ {128, 256, 512, 1024}: 8 cells; predicted k-ary search
(3 widths a round, 3 probes a task) over 1–65536 with the verification round. The peer's own runner
took 1,052 s on this machine kind (issue 32). ``--small`` runs 3k epochs at lr 1e-2 on the d = 32 cells
with F ≤ 256 (a few minutes).

Prints per cell both minimum widths and probe counts, the probes by stop reason with their mean
epochs, then ``RESULT peer_grid_seconds`` (early stop), ``RESULT peer_grid_probes``,
``RESULT peer_grid_full_recipe_seconds``, ``RESULT peer_grid_ratio`` (early stop / full recipe) and
``RESULT peer_grid_widths_identical`` (1 when every cell's minimum width agrees).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.runner import run_sweep  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402
from orchestrator.store import Store  # noqa: E402

SWEEP = """
name: peer_{tag}
experiment: capacity
fixed: {{method: gd, geometry: spherical, tied: true, mapping: permutation, gd_epochs: {epochs}, gd_lr: {lr}}}
zip:
  d: {d}
  num_facts: {facts}
search: {{low: 1, high: 65536, strategy: kary, arity: 3, threshold: 1.0, early_stop: {early_stop}}}
packing: {{probes_per_task: 3}}
storage: {{root: '{root}'}}
"""
PEER = [(32, 64), (32, 128), (32, 256), (32, 512), (64, 128), (64, 256), (64, 512), (64, 1024)]
SMALL = [(32, 64), (32, 128), (32, 256)]


def search(root: Path, tag: str, early_stop: bool, epochs: int, lr: float, cells: list[tuple[int, int]]):
    path = root / f"{tag}.yaml"
    path.write_text(SWEEP.format(tag=tag, early_stop=str(early_stop).lower(), epochs=epochs, lr=lr,
                                 d=[d for d, _ in cells], facts=[f for _, f in cells], root=root / tag))
    start = time.perf_counter()
    run_sweep(load_spec(path), progress=False)
    seconds = time.perf_counter() - start
    store = Store(root / tag)
    found = store.load("cells", f"peer_{tag}")
    probes = store.load("probes", f"peer_{tag}")
    return seconds, {(r["d"], r["num_facts"]): r for r in found.to_dict("records")}, probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="3k epochs (lr 1e-2), d = 32, F in {64, 128, 256}")
    args = parser.parse_args()
    epochs, lr, cells = (3000, 1e-2, SMALL) if args.small else (10_000, 1e-3, PEER)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        fast_seconds, fast, fast_probes = search(root, "early_stop", True, epochs, lr, cells)
        full_seconds, full, _ = search(root, "full_recipe", False, epochs, lr, cells)
    print(f"GD capacity grid of the revised paper, {epochs} epochs, lr {lr:g}, threshold 1: {len(cells)} cells")
    print(f"{'d':>3} {'F':>5} {'early-stop width':>16} {'probes':>6} {'full-recipe width':>17} {'probes':>6}")
    for key in sorted(full):
        a, b = fast[key], full[key]
        print(f"{key[0]:>3} {key[1]:>5} {a['min_width']:>16} {a['num_probes']:>6} {b['min_width']:>17} "
              f"{b['num_probes']:>6}")
    ok = fast_probes[fast_probes["status"] == "ok"]
    for reason, group in ok.groupby("stop_reason"):
        print(f"early stop: {len(group)} probes stopped by {reason!r}, mean epochs run {group['epochs_run'].mean():.0f}")
    identical = set(fast) == set(full) and all(fast[k]["min_width"] == full[k]["min_width"] for k in full)
    print(f"RESULT peer_grid_seconds {fast_seconds:.1f}")
    print(f"RESULT peer_grid_probes {sum(r['num_probes'] for r in fast.values())}")
    print(f"RESULT peer_grid_full_recipe_seconds {full_seconds:.1f}")
    print(f"RESULT peer_grid_ratio {fast_seconds / full_seconds:.3f}")
    print(f"RESULT peer_grid_widths_identical {int(identical)}")


if __name__ == "__main__":
    main()
