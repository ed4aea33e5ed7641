"""Recall inside the constrained one-layer Transformer, both schedules, per method and whitening.

Runs the ``transformer_usability`` experiment's probes directly (no Ray, no MLflow) and prints one
row per cell plus RESULT lines. Default: laptop scale, d = 64, F = 512.

    .venv/bin/python benchmarks/transformer_usability.py [--d 64] [--facts 512] [--only gd,hebbian]
    .venv/bin/python benchmarks/transformer_usability.py --capacity [--widths 512,1024] [--only hebbian]

``--capacity`` runs the ``transformer_capacity`` search instead: the largest F stored standalone and
inside the Transformer (pretrain-then-swap) at each fixed width, plain and whitened.
"""
from __future__ import annotations

import argparse
import time

import torch

from factmlp.experiments.transformer_capacity import EXPERIMENT as CAPACITY
from factmlp.experiments.transformer_usability import EXPERIMENT as USABILITY

# (method, whiten, width): GD near its capacity; the constructions at widths where they store F = 512.
CELLS = [("gd", False, 16), ("gd", False, 64),
         ("hebbian", False, 2048), ("hebbian", False, 4096), ("hebbian", True, 512), ("hebbian", True, 2048),
         ("encoder_decoder", False, 256), ("encoder_decoder", True, 256),
         ("encoder_decoder", False, 1024), ("encoder_decoder", True, 1024)]

COLUMNS = ("params", "mlp_accuracy", "margin_min", "lipschitz_bound", "jacobian_rel_max", "recall_exact_key",
           "recall_eps_0p05", "recall_eps_0p1", "recall_eps_0p2", "insert_recall", "insert_attn_steps_run",
           "insert_attn_error_mean", "swap_recall", "swap_attn_error_mean")


def run_cell(experiment, cell: dict) -> dict:
    """The orchestrator's loop without Ray: ask for probes, run them, until the cell is done."""
    results = []
    while probes := experiment.next_round(cell, results):
        results += [{**p, **r} for p, r in zip(probes, experiment.run_probes(cell, probes))]
    return experiment.summarize(cell, results)


def capacity(args, extra: dict) -> None:
    columns = ("params", "max_facts_standalone", "max_facts", "usable_fraction", "num_probes")
    print("method,whiten,width," + ",".join(columns) + ",seconds")
    for method in (args.only or "hebbian,encoder_decoder").split(","):
        for width in map(int, args.widths.split(",")):
            for whiten in (False, True):
                cell = CAPACITY.resolve({"method": method, "whiten": whiten, "width": width, "d": args.d,
                                         "facts_step": 32, **extra})
                start = time.perf_counter()
                summary = run_cell(CAPACITY, cell)
                print(f"{method},{whiten},{width}," + ",".join(str(summary[c]) for c in columns)
                      + f",{time.perf_counter() - start:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--facts", type=int, default=512)
    parser.add_argument("--only", default="", help="comma-separated methods")
    parser.add_argument("--cells", default="", help="method:whiten:width,... instead of the default cells")
    parser.add_argument("--capacity", action="store_true", help="run the transformer_capacity search")
    parser.add_argument("--widths", default="512,1024")
    parser.add_argument("--set", action="append", default=[], help="extra cell parameter key=value (python literal)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    extra = {}
    for item in args.set:
        key, value = item.split("=", 1)
        import ast
        extra[key] = ast.literal_eval(value)
    if args.capacity:
        return capacity(args, extra)
    print("method,whiten,width," + ",".join(COLUMNS) + ",seconds")
    cells = CELLS
    if args.cells:
        cells = [(m, w == "true", int(n)) for m, w, n in (c.split(":") for c in args.cells.split(","))]
    for method, whiten, width in cells:
        if args.only and method not in args.only.split(","):
            continue
        cell = USABILITY.resolve({"method": method, "whiten": whiten, "width": width, "d": args.d,
                                  "num_facts": args.facts, **extra})
        start = time.perf_counter()
        summary = run_cell(USABILITY, cell)
        seconds = time.perf_counter() - start
        fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        print(f"{method},{whiten},{width}," + ",".join(fmt(summary.get(c)) for c in COLUMNS) + f",{seconds:.1f}",
              flush=True)
        print(f"RESULT transformer_usability method={method} whiten={whiten} d={args.d} F={args.facts} m={width} "
              f"insert_recall={fmt(summary['insert_recall'])} swap_recall={fmt(summary['swap_recall'])} "
              f"jacobian_rel_max={fmt(summary['jacobian_rel_max'])}", flush=True)


if __name__ == "__main__":
    main()
