"""Wall time of certified decodability ρ at F=16384, d=128 (spherical values, seeded).

Run from the repo root: python3 benchmarks/rho_speed.py. Also prints ρ at F=4096 to compare with
docs/science.md#decodability (≈0.61 at d=128, F=4096; a bit lower at F=16384). The last line is the result.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from factmlp.decodability import decodability  # noqa: E402


def spherical(F: int, d: int, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((F, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def main() -> None:
    small = decodability(spherical(4096, 128))
    print(f"F=4096  d=128 rho={small.rho:.4f} gap={small.gap:.1e} (table: ~0.61)")
    V = spherical(16384, 128)
    t0, c0 = time.perf_counter(), time.process_time()
    res = decodability(V)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"F=16384 d=128 rho={res.rho:.4f} gap={res.gap:.1e} "
          f"mean rho_i={res.rho_per_value.mean():.4f} cpu={cpu:.1f}s load={os.getloadavg()[0]:.1f}")
    print(f"RESULT rho_seconds_f16384_d128 {wall:.2f}")


if __name__ == "__main__":
    main()
