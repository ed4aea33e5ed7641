"""Model-epochs per second of ``train_batched``: K widths at once vs the same widths one after another.

Fixed fact set (spherical, tied, permutation, d=32, F=256) and K widths spread around its capacity
(≈ 10 hidden units), a few hundred epochs each with early stopping off, so every run does the same
work. Batched and sequential runs alternate and the best of ``--repeats`` is kept, which damps the
noise of a shared machine. On CPU the rates use the process's CPU time (one torch thread, so
CPU time is compute time; time spent waiting for other tenants of a shared machine is left out)
and the wall-clock rates are printed beside them; on GPU they use wall-clock time after a
synchronise. It also times the one part whose work grows with K no matter how the models are
batched, softmax(y·Vᵀ)·V over all F values (F² exponentials per model-epoch), and prints the
ceiling it sets on the speed-up: sequential time per model-epoch / that part's time per model-epoch.
Ends with one RESULT line: the GPU ratio when there is a GPU, else the CPU ratio.

    .venv/bin/python benchmarks/train_throughput.py [--threads 1] [--epochs 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from factmlp.geometries import make_factset
from factmlp.train import TrainConfig, _softmax_values, train_batched

KS = (1, 4, 16, 64)


def widths_for(k: int) -> list[int]:
    """K widths spread evenly over 4..24, around the capacity width of d=32, F=256."""
    return [int(round(w)) for w in np.linspace(4, 24, k)] if k > 1 else [12]


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(seconds the rate is based on, wall seconds) for one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (wall if device.type == "cuda" else cpu), wall


def measure(device: torch.device, epochs: int, repeats: int) -> dict[int, tuple[float, float]]:
    """K → (batched, sequential) model-epochs per second."""
    factset = make_factset("spherical", 32, 256, seed=0)
    config = TrainConfig(epochs=epochs, loss_stop=0.0, device=str(device))
    train_batched(factset, [8, 12], TrainConfig(epochs=5, device=str(device)))  # warm-up
    rates = {}
    for k in KS:
        widths = widths_for(k)
        batched, sequential = [], []
        for _ in range(repeats):
            batched.append(timed(lambda: train_batched(factset, widths, config), device))
            sequential.append(timed(lambda: [train_batched(factset, [w], config) for w in widths], device))
        (b, bw), (s, sw) = min(batched), min(sequential)
        rates[k] = (k * epochs / b, k * epochs / s)
        print(f"{device.type:>4} K={k:<3} batched {rates[k][0]:8.0f}  sequential {rates[k][1]:8.0f}  "
              f"speedup {rates[k][0] / rates[k][1]:5.2f}   (wall clock: {k * epochs / bw:8.0f} {k * epochs / sw:8.0f}  "
              f"speedup {sw / bw:5.2f})  widths {min(widths)}..{max(widths)}", flush=True)
    return rates


def softmax_seconds_per_model_epoch(device: torch.device, k: int = 16, repeats: int = 300) -> float:
    """Time of softmax(y·Vᵀ)·V for one model and one epoch, measured on K models at once."""
    factset = make_factset("spherical", 32, 256, seed=0)
    values = torch.as_tensor(factset.values, dtype=torch.float32, device=device)
    y = torch.randn(k, factset.num_facts, factset.d, device=device)
    for _ in range(10):
        _softmax_values(y, values, 1 << 27)
    seconds, _ = timed(lambda: [_softmax_values(y, values, 1 << 27) for _ in range(repeats)], device)
    return seconds / (k * repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: a second thread only helps on an idle machine)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), {args.epochs} epochs, "
          f"best of {args.repeats}; model-epochs per second")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    ratios = {}
    for device in devices:
        rates = measure(device, args.epochs, args.repeats)
        ratios[device.type] = rates[16][0] / rates[16][1]
        softmax = softmax_seconds_per_model_epoch(device)
        print(f"{device.type}: softmax over all values {softmax * 1e3:.3f} ms per model-epoch of "
              f"{1e3 / rates[16][1]:.3f} sequential: batching can at best reach "
              f"{1 / rates[16][1] / softmax:.2f}x")
    for name, ratio in ratios.items():
        print(f"{name} batched_speedup_k16 {ratio:.2f}")
    print(f"RESULT batched_speedup_k16 {ratios['cuda' if 'cuda' in ratios else 'cpu']:.2f}")


if __name__ == "__main__":
    main()
