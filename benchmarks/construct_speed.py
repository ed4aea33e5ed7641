"""Seconds to build each construction for F = 16384 facts at d = 128 (goal: at most 10 s each).

Widths: the one each design uses for this F, or one near the smallest that stores:
  encoder_decoder (global)  c·⌈F/d⌉ (the design's exact size, c from the code-dimension search)
  encoder_decoder local     F (one unit per key)
  hebbian, hebbian_whitened, data_dependent, ntk   F/2, F/2, F/12, F/2 (hebbian_whitened needs about
                            0.46·F at d = 64; data_dependent about F/11; ntk stores nothing this large,
                            so its width only sets the cost)
  encoder_decoder fit       (gradient variant, reported only with --fit; not a closed form)
Build time only; with --evaluate the accuracy is printed too (evaluation is not timed).

    .venv/bin/python benchmarks/construct_speed.py [--facts 16384] [--d 128] [--evaluate] [--fit]
"""
from __future__ import annotations

import argparse
import math
import time

from factmlp.constructions.encoder_decoder import codebook
from factmlp.evaluate import evaluate
from factmlp.geometries import make_factset
from factmlp.methods import build_fact_mlp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=16384)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--evaluate", action="store_true")
    ap.add_argument("--fit", action="store_true", help="also time the gradient variant (2000 epochs)")
    ap.add_argument("--only", nargs="*", help="labels to run (default all)")
    args = ap.parse_args()
    fs = make_factset("spherical", args.d, args.facts, seed=0)
    f = args.facts
    c = codebook(fs).dim
    runs = [
        ("encoder_decoder", "encoder_decoder", c * math.ceil(f / args.d), {}),
        ("encoder_decoder_local", "encoder_decoder", f, {"solve": "local"}),
        ("hebbian", "hebbian", f // 2, {}),
        ("hebbian_whitened", "hebbian_whitened", f // 2, {}),
        ("data_dependent", "data_dependent", f // 12, {}),
        ("ntk", "ntk", f // 2, {}),
    ]
    if args.fit:
        runs.append(("encoder_decoder_fit", "encoder_decoder", f // 48, {"variant": "fit"}))
    worst = 0.0
    print(f"F = {f}, d = {args.d}, spherical; code dimension c = {c}")
    for label, method, width, options in runs:
        if args.only and label not in args.only:
            continue
        start = time.perf_counter()
        model = build_fact_mlp(method, fs, width, options=options)
        seconds = time.perf_counter() - start
        if label != "encoder_decoder_fit":
            worst = max(worst, seconds)
        extra = f"  accuracy {evaluate(model, fs)['accuracy']:.4f}" if args.evaluate else ""
        print(f"{label:<24} width {width:>6}  params {model.param_count():>10}  {seconds:7.2f} s{extra}", flush=True)
    print(f"RESULT construct_max_seconds {worst:.2f}")


if __name__ == "__main__":
    main()
