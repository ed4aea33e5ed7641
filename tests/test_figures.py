"""Report figures: words on the axes, one colour per method and one marker per d everywhere, seeds and
medians, a band around each fitted law, cells that stored nothing marked, the legend off the data."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from factmlp.experiments.capacity import EXPERIMENT as CAPACITY
from factmlp.experiments.transformer_usability import EXPERIMENT as USABILITY
from orchestrator import figures
from orchestrator.fitting import fit_laws
from orchestrator.progress import Progress


def cells() -> pd.DataFrame:
    """gd and hebbian_whitened at d = 16 and 32, F over three octaves, three seeds; one cell stored nothing."""
    rows = []
    for method, constant in (("gd", 3.0), ("hebbian_whitened", 40.0)):
        for d in (16, 32):
            for f in (64, 128, 256, 512):
                for seed in range(3):
                    params = constant * f * (1 + 0.05 * seed)
                    rows.append({"cell_id": f"{method}-{d}-{f}-{seed}", "method": method, "d": d, "num_facts": f,
                                 "seed": seed, "params": params, "max_params_tried": params, "rho": 0.5})
    rows.append({"cell_id": "lost", "method": "hebbian_whitened", "d": 16, "num_facts": 1024, "seed": 0,
                 "params": np.nan, "max_params_tried": 3 * 16 * 65536, "rho": 0.5})
    return pd.DataFrame(rows)


def test_facts_vs_params_reads_as_a_paper_figure():
    frame = cells()
    varying = ("method", "d", "num_facts", "seed")
    laws = fit_laws(frame, CAPACITY.fits, varying, n_boot=100)
    spec = next(f for f in CAPACITY.figures if f.name == "facts_vs_params")
    fig = figures.draw(frame, laws, spec, CAPACITY, varying, "test")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "parameters, W" and ax.get_ylabel() == "facts stored, F"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["64", "128", "256", "512", "1024"]
    assert len(ax.collections) >= 4 * 2 + 1  # seeds, medians (per method and d) and the crosses
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bands) == 4  # one fitted power law per (method, d), each with its band
    crosses = [c for c in ax.collections if len(c.get_offsets()) and (c.get_offsets()[:, 0] == 3 * 16 * 65536).any()]
    assert crosses  # the cell that stored nothing is drawn at the largest size tried
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert "gd, d = 16" in labels and "stored nothing up to this size" in labels
    fig.canvas.draw()
    box, data = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= data.x1  # the legend sits outside the axes: it hides no point
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=figures.DPI)
    assert Image.open(buffer).info["dpi"][0] >= 199


def test_one_colour_per_method_and_one_marker_per_d_in_every_sweep():
    methods = set(CAPACITY.params["method"].choices) | set(USABILITY.params["method"].choices)
    assert {figures.colour(m) for m in methods} == {figures.STYLE[m] for m in methods}
    assert len({figures.colour(m) for m in methods}) == len(methods)
    assert figures.colour("gd") == figures.STYLE["gd"]  # not the order of appearance in a sweep
    ds = (8, 16, 32, 64, 90, 128, 256, 384)
    assert len({figures.marker(d) for d in ds}) == len(ds)


def test_progress_prints_lines_and_a_heartbeat_when_not_a_terminal(monkeypatch):
    from orchestrator import progress
    monkeypatch.setattr(progress, "HEARTBEAT", 0.0)
    out = io.StringIO()
    bar = Progress("demo", 2, 0, stream=out)
    assert bar.mode == "lines"
    bar.status("starting Ray")  # a phase is only a terminal's bar label: a log shows the work
    assert out.getvalue() == ""
    bar.begin()
    bar.probes_recorded(3, 1)
    bar.cell_done({"method": "gd", "d": 32}, {"min_width": 27, "params": 2592})
    bar.tick(in_flight=1)
    lines = out.getvalue().splitlines()
    assert "demo: 2 cells, 0 already done, 2 to run" in lines[0]
    assert "cell 1/2 done: method=gd d=32: min_width 27, params 2592" in lines[1]
    assert "running: 1/2 cells done, 4 probes recorded (1 failed), 1 tasks in flight" in lines[2]
