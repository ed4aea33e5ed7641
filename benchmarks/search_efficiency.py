"""Searches that learn from finished cells: the same GD capacity grid searched plainly and with
predicted brackets, in one run, same code otherwise (factsweep through Ray on this machine's cores).

Grid (the published recipe): GD, 10k epochs, lr 1e-3, threshold 1.0, spherical, tied, permutation;
d ∈ {32, 64}, F ∈ {128, 256, 512, 1024}: 8 cells; k-ary search (3 widths a round) over 1–65536
with the verification round. ``search.predict: false`` is the plain search; the default opens each
cell around the width predicted from the cells already finished (the first ones around GD's rule of
thumb m = F/(0.75·d)) and starts a new cell only on an idle core, so its prediction is the newest.
``--small`` runs the same at 3k epochs, F ≤ 256 (a few minutes).

Prints per cell both minimum widths and probe counts, then
``RESULT search_probe_ratio``, ``RESULT search_wall_ratio`` (predicted / plain) and
``RESULT search_widths_identical`` (1 when every cell's minimum width agrees).
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
name: search_{tag}
experiment: capacity
fixed: {{geometry: spherical, tied: true, mapping: permutation, gd_epochs: {epochs}, gd_lr: {lr}}}
grid:
  method: [gd]
  d: [32, 64]
  num_facts: {facts}
search: {{low: 1, high: 65536, strategy: kary, arity: 3, threshold: 1.0, predict: {predict}}}
packing: {{probes_per_task: 3}}
storage: {{root: '{root}'}}
"""


def search(root: Path, tag: str, predict: bool, epochs: int, lr: float, facts: list[int]) -> tuple[float, dict]:
    path = root / f"{tag}.yaml"
    path.write_text(SWEEP.format(tag=tag, predict=str(predict).lower(), epochs=epochs, lr=lr, facts=facts,
                                 root=root / tag))
    start = time.perf_counter()
    run_sweep(load_spec(path), progress=False)
    seconds = time.perf_counter() - start
    cells = Store(root / tag).load("cells", f"search_{tag}")
    return seconds, {(r["d"], r["num_facts"]): r for r in cells.to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="3k epochs (lr 1e-2), F in {64, 128, 256}")
    args = parser.parse_args()
    epochs, lr, facts = (3000, 1e-2, [64, 128, 256]) if args.small else (10_000, 1e-3, [128, 256, 512, 1024])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        plain_seconds, plain = search(root, "plain", False, epochs, lr, facts)
        guided_seconds, guided = search(root, "predicted", True, epochs, lr, facts)
    print(f"GD capacity grid, {epochs} epochs, lr {lr:g}: d in {{32, 64}}, F in {facts}")
    print(f"{'d':>3} {'F':>5} {'plain width':>11} {'probes':>6} {'predicted width':>15} {'probes':>6} {'prediction':>10}")
    for key in sorted(plain):
        p, g = plain[key], guided[key]
        prediction = g.get("predicted_width")
        shown = "-" if prediction is None or prediction != prediction else f"{prediction:.1f}"
        print(f"{key[0]:>3} {key[1]:>5} {p['min_width']:>11} {p['num_probes']:>6} {g['min_width']:>15} "
              f"{g['num_probes']:>6} {shown:>10}")
    plain_probes = sum(r["num_probes"] for r in plain.values())
    guided_probes = sum(r["num_probes"] for r in guided.values())
    identical = all(plain[k]["min_width"] == guided[k]["min_width"] for k in plain)
    print(f"probes: plain {plain_probes}, predicted {guided_probes}; wall: plain {plain_seconds:.1f}s, "
          f"predicted {guided_seconds:.1f}s")
    print(f"RESULT search_probe_ratio {guided_probes / plain_probes:.3f}")
    print(f"RESULT search_wall_ratio {guided_seconds / plain_seconds:.3f}")
    print(f"RESULT search_widths_identical {int(identical)}")


if __name__ == "__main__":
    main()
