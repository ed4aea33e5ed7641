"""Does our GD reproduce the paper's capacity? (fidelity target: at most 5 params per fact, paper ≈ 4)

The published recipe (Adam 1e-3, cosine to 1e-6 over 10,000 full-batch epochs, stop at loss 1e-7,
bilinear gate, no bias) on spherical, tied keys/values with a random permutation. The minimum width
that stores 100% of the facts is found by a k-ary search (``next_widths``), each round training its
widths together with ``train_batched``. Prints one table row per (d, F) and the RESULT lines.

    .venv/bin/python benchmarks/gd_fidelity.py [--arity 4] [--threads 1] [--epochs 10000]
"""
from __future__ import annotations

import argparse
import time

import torch

from orchestrator.search import SmallestSuccess
from factmlp.evaluate import evaluate
from factmlp.geometries import make_factset
from factmlp.train import TrainConfig, train_batched

CELLS = ((32, 256), (64, 1024))


def search_high(d: int, num_facts: int) -> int:
    """The widest probe: 12 params per fact (3·d·m = 12·F), three times the paper's ≈ 4."""
    return 4 * num_facts // d


def min_width(d: int, num_facts: int, high: int, arity: int, config: TrainConfig) -> tuple[int | None, list]:
    """k-ary search for the smallest width with accuracy 1.0; returns it and the probe log."""
    factset = make_factset("spherical", d, num_facts, seed=0, tied=True, mapping="permutation")
    observations, log = {}, []
    while True:
        step = SmallestSuccess("width").step(observations, 1, high, arity)
        if step.done:
            if not step.monotone:
                print(f"  warning: non-monotone observations at d={d}, F={num_facts}: {sorted(observations.items())}")
            return step.answer, log
        start = time.perf_counter()
        trained = train_batched(factset, list(step.next), config)
        seconds = time.perf_counter() - start
        for width, result in zip(step.next, trained):
            accuracy = evaluate(result["model"], factset)["accuracy"]
            observations[width] = accuracy >= 1.0
            log.append((width, accuracy, result["loss"], result["epochs"]))
            print(f"  d={d} F={num_facts} width={width:4d} accuracy={accuracy:.4f} loss={result['loss']:.2e} "
                  f"epochs={result['epochs']} (round of {len(step.next)} took {seconds:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arity", type=int, default=4, help="widths trained together per search round")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs)
    print(f"device={config.torch_device()} threads={torch.get_num_threads()} arity={args.arity} {config}")
    rows = []
    for d, num_facts in CELLS:
        start = time.perf_counter()
        width, _ = min_width(d, num_facts, search_high(d, num_facts), args.arity, config)
        params = None if width is None else 3 * d * width
        rows.append((d, num_facts, width, params, None if width is None else params / num_facts,
                     time.perf_counter() - start))
    print(f"\n{'d':>4} {'F':>6} {'min width':>10} {'params':>8} {'params/fact':>12} {'seconds':>8}")
    for d, num_facts, width, params, per_fact, seconds in rows:
        print(f"{d:>4} {num_facts:>6} {str(width):>10} {str(params):>8} "
              f"{'n/a' if per_fact is None else f'{per_fact:.3f}':>12} {seconds:>8.0f}")
    for d, num_facts, _, _, per_fact, _ in rows:
        print(f"RESULT gd_params_per_fact_d{d}_f{num_facts} {'nan' if per_fact is None else f'{per_fact:.4f}'}")


if __name__ == "__main__":
    main()
