"""Report figures read at a glance: words on the axes, one colour per method and one marker per d
everywhere, medians over seeds (never a line per seed), fitted laws only over the measured range,
cells that stored nothing side by side and counted, no empty or one-point panel, a reference line, the
shortfall at a ceiling on a log axis, a caption, and nothing outside the canvas."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba as matplotlib_colour
from PIL import Image

from factmlp.experiments.capacity import EXPERIMENT as CAPACITY
from factmlp.experiments.editing import EXPERIMENT as EDITING
from factmlp.experiments.transformer_usability import EXPERIMENT as USABILITY
from orchestrator import figure_style, figures, registry
from orchestrator.experiment import FigureSpec
from orchestrator.fitting import fit_laws
from orchestrator.progress import Progress


def spec_of(experiment, name: str):
    return next(f for f in experiment.reporting.figures if f.name == name)


def inside_canvas(fig) -> None:
    """Every legend and text (titles, tick labels, caption, counts) lies within the figure's canvas."""
    fig.canvas.draw()
    canvas = fig.bbox
    artists = list(fig.legends) + [t for sub in fig.subfigs for t in sub.legends] + list(fig.texts)
    artists += [t for sub in fig.subfigs for t in sub.texts + ([sub._suptitle] if sub._suptitle else [])]
    for ax in fig.axes:
        artists += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *drawn_ticks(ax)]
    for artist in artists:
        if not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        box = artist.get_window_extent(fig.canvas.get_renderer())
        assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1, (artist, box, canvas)
        assert box.y0 >= canvas.y0 - 1 and box.y1 <= canvas.y1 + 1, (artist, box, canvas)


def drawn_ticks(ax) -> list:
    """The tick labels matplotlib draws: those within the axes' view limits."""
    out = []
    for axis, index in ((ax.xaxis, 0), (ax.yaxis, 1)):
        low, high = sorted(axis.get_view_interval())
        out += [t for t in axis.get_ticklabels() if low - 1e-9 <= t.get_position()[index] <= high + 1e-9]
    return out


def legend_texts(fig) -> list[str]:
    return [t.get_text() for sub in [fig, *fig.subfigs] for legend in sub.legends for t in legend.get_texts()]


def all_text(fig) -> str:
    """The figure's own texts (title, caption) with wrapped lines joined."""
    return " ".join(" ".join(t.get_text().split()) for sub in [fig, *fig.subfigs] for t in sub.texts)


def capacity_cells() -> pd.DataFrame:
    """gd and hebbian_whitened at d = 16 and 32, F over three octaves, three seeds; hebbian_whitened at
    d = 16 stored nothing at F = 1024 in every seed, gd at d = 32 in one seed of F = 512."""
    rows = []
    for method, constant in (("gd", 3.0), ("hebbian_whitened", 40.0)):
        for d in (16, 32):
            for f in (64, 128, 256, 512):
                for seed in range(3):
                    params = constant * f * (1 + 0.05 * seed)
                    lost = method == "gd" and d == 32 and f == 512 and seed == 2
                    rows.append({"cell_id": f"{method}-{d}-{f}-{seed}", "method": method, "d": d, "num_facts": f,
                                 "seed": seed, "params": np.nan if lost else params,
                                 "max_params_tried": 3 * 32 * 65536 if lost else params, "rho": 0.5,
                                 "threshold": 1.0, "gd_epochs": 300, "gd_lr": 0.02})
    for seed in range(3):
        rows.append({"cell_id": f"lost-{seed}", "method": "hebbian_whitened", "d": 16, "num_facts": 1024,
                     "seed": seed, "params": np.nan, "max_params_tried": 3 * 16 * 65536, "rho": 0.5})
    return pd.DataFrame(rows)


def test_facts_vs_params_reads_as_a_paper_figure():
    frame = capacity_cells()
    varying = ("method", "d", "num_facts", "seed")
    laws = fit_laws(frame, CAPACITY.reporting.fits, varying, n_boot=100)
    fig = figures.draw(frame, laws, spec_of(CAPACITY, "facts_vs_params"), CAPACITY, varying, "Facts against W")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "parameters, W" and ax.get_ylabel() == "facts stored, F"
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["64", "128", "256", "512", "1024"]
    assert "1M" in [t.get_text() for t in ax.get_xticklabels()]  # never "1000k"
    for line in ax.lines:  # each fitted law stays within the F it was fitted on (64 … 512)
        assert 64 * 0.99 <= min(line.get_ydata()) and max(line.get_ydata()) <= 512 * 1.01
    assert len(ax.lines) == 4  # one power law per (method, d)
    crosses = [c for c in ax.collections if len(c.get_offsets()) and c.get_paths()
               and (c.get_offsets()[:, 0] > 3 * 16 * 65536 * 0.8).all()]
    assert len(crosses) == 2  # hebbian_whitened at F = 1024 and gd's lost seed at F = 512, each once
    assert "×3" in [t.get_text() for t in ax.texts]  # three seeds behind one cross, counted
    hollow = [c for c in ax.collections if len(c.get_offsets()) == 1 and np.allclose(c.get_facecolor()[0], 1)]
    assert len(hollow) == 1  # gd, d = 32, F = 512: two seeds stored, one did not
    labels = legend_texts(fig)
    assert {"gd", "hebbian_whitened", "d = 16", "d = 32"} <= set(labels)
    assert any(t.startswith("stored nothing") for t in labels) and any(t.startswith("hollow") for t in labels)
    assert "stored: accuracy ≥ 1; GD: 300 epochs" in all_text(fig) and "seeds 0–2 (3 per setting)" in all_text(fig)
    assert "Facts against W" == fig.subfigs[0]._suptitle.get_text()
    inside_canvas(fig)
    legend = fig.subfigs[0].legends[0]
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0  # below the data, hiding no point
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=figure_style.DPI)
    assert Image.open(buffer).info["dpi"][0] >= 199


def test_a_figure_is_not_drawn_when_the_sweep_does_not_vary_what_it_is_about():
    frame = capacity_cells()
    one_f = frame[frame["num_facts"] == 128]
    spec = spec_of(CAPACITY, "facts_vs_params")
    assert figures.draw(one_f, [], spec, CAPACITY, ("method", "d", "seed"), "") is None  # F against W at one F
    rho = spec_of(CAPACITY, "params_vs_inverse_rho")
    assert figures.draw(frame, [], rho, CAPACITY, ("method", "d", "num_facts", "seed"), "") is None  # no β


def probe_rows() -> pd.DataFrame:
    """Accuracy along width for two methods, two F and three seeds; each seed probes its own widths."""
    rows = []
    for method, scale in (("gd", 1.0), ("hebbian_whitened", 8.0)):
        for f in (64, 256):
            for seed in range(3):
                for width in np.unique(np.round(scale * f / 16 * np.array([0.5, 1, 2, 4]) * (1 + 0.1 * seed))):
                    rows.append({"cell_id": f"{method}{f}{seed}", "method": method, "d": 32, "num_facts": f,
                                 "seed": seed, "width": width,
                                 "accuracy": min(1.0, width / (scale * f / 8) + 0.02 * seed)})
    return pd.DataFrame(rows)


def test_accuracy_curves_are_medians_over_seeds_with_a_band_a_panel_per_method_coloured_by_f():
    fig = figures.draw(probe_rows(), [], spec_of(CAPACITY, "accuracy_vs_width"), CAPACITY,
                       ("method", "num_facts", "seed"), "Accuracy")
    assert [ax.get_title() for ax in fig.axes] == ["gd", "hebbian_whitened"]
    for ax in fig.axes:
        assert len(ax.lines) == 2  # one median per F, not one line per seed (6 cells a panel)
        assert len([c for c in ax.collections if "Poly" in type(c).__name__]) == 2  # a band each
    shades = [[tuple(np.round(matplotlib_colour(line.get_color()), 3)) for line in ax.lines] for ax in fig.axes]
    assert shades[0] == shades[1] and shades[0][0] != shades[0][1]  # a colour per F, the same in every panel
    assert {"F = 64", "F = 256"} <= set(legend_texts(fig)) and "d = 32" in all_text(fig)
    inside_canvas(fig)


def rho_cells() -> pd.DataFrame:
    """The ρ law: β moves ρ of the values when the spike is on the values, not when it is on the keys."""
    rows = []
    for spike_on in ("values", "keys"):
        for beta in (0.0, 2.0, 6.0):
            for method, constant in (("gd", 900.0), ("encoder_decoder", 18000.0)):
                for seed in range(2):
                    rho = 0.54 / (1 + beta / 4) if spike_on == "values" else 0.54
                    rows.append({"cell_id": f"{spike_on}{beta}{method}{seed}", "method": method, "d": 32,
                                 "num_facts": 256, "beta": beta, "spike_on": spike_on, "seed": seed,
                                 "rho": rho * (1 + 0.01 * seed), "params": constant / rho})
    return pd.DataFrame(rows)


def test_the_rho_figure_draws_no_one_point_panel_and_names_each_beta():
    frame = rho_cells()
    varying = ("method", "beta", "spike_on", "seed")
    fig = figures.draw(frame, [], spec_of(CAPACITY, "params_vs_inverse_rho"), CAPACITY, varying, "ρ")
    (ax,) = fig.axes  # the keys panel (one ρ for every β) is not drawn
    assert ax.get_title() == "spike on = values"
    assert sorted(t.get_text() for t in ax.texts) == ["β = 0", "β = 2", "β = 6"]
    width, height = fig.get_size_inches()
    assert width / height < 2  # not a strip
    inside_canvas(fig)
    facts = spec_of(CAPACITY, "facts_vs_params")
    assert figures.draw(frame, [], facts, CAPACITY, varying, "") is None  # one F: no facts-vs-params figure


def usability_cells(recall: float) -> pd.DataFrame:
    rows = []
    for method in ("encoder_decoder", "hebbian"):
        for whiten in (False, True):
            for width, params in ((512, 8e4), (2048, 3.2e5)):
                for seed in range(3):
                    rows.append({"cell_id": f"{method}{whiten}{width}{seed}", "method": method, "whiten": whiten,
                                 "width": width, "seed": seed,
                                 "params": params * (1 + 0.01 * whiten) * (1.2 if method == "hebbian" else 1),
                                 "swap_recall": recall - 0.003 * seed * whiten,
                                 "recall_eps_0p1": 1.0 if seed == 0 else recall - 0.002 * seed,
                                 "jacobian_rel_max": 3.0 + 10 * whiten + (method == "hebbian") + 0.1 * seed,
                                 "schedule": "both", "attn_steps": 2000, "num_facts": 512})
    return pd.DataFrame(rows)


def test_recall_figures_show_the_reference_and_the_shortfall_at_the_ceiling():
    frame = usability_cells(0.995)
    varying = ("method", "whiten", "width", "seed")
    fig = figures.draw(frame, [], spec_of(USABILITY, "recall_vs_params"), USABILITY, varying, "recall")
    ax = fig.axes[0]
    references = [line for line in ax.lines if list(line.get_ydata()) == [0.99, 0.99]]
    assert len(references) == 1 and "reference 0.99" in legend_texts(fig)
    assert [a.get_title() for a in fig.axes] == ["m = 512", "m = 2048"]  # the width does not fix W: a panel each
    one_method = frame[frame["method"] == "hebbian"]
    shaded = figures.draw(one_method, [], spec_of(USABILITY, "recall_vs_params"), USABILITY, varying, "")
    assert len(shaded.axes) == 1 and {"m = 512", "m = 2048"} <= set(legend_texts(shaded))  # colour is free
    fig.canvas.draw()
    ticks = [float(t.get_text().rstrip("k")) * 1000 for t in ax.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 2 and np.ptp(np.diff(np.log(ticks))) < 0.2  # evenly spread on the log axis
    inside_canvas(fig)
    at_ceiling = figures.draw(frame, [], spec_of(USABILITY, "recall_vs_lipschitz"), USABILITY, varying, "")
    ax = at_ceiling.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel().startswith("1 − recall under query noise")
    assert "a shortfall of 0 is drawn at" in all_text(at_ceiling)
    inside_canvas(at_ceiling)


def editing_cells() -> pd.DataFrame:
    rows = []
    for fact_mlp, width in (("gd", 24), ("hebbian_whitened", 384)):
        for fraction in (0.02, 0.1):
            for method, score in (("swap", 0.99), ("rank_one", 0.6), ("fine_tune", 0.8)):
                for seed in range(4):
                    rows.append({"cell_id": f"{fact_mlp}{fraction}{method}{seed}", "fact_mlp": fact_mlp,
                                 "width": width, "edit_fraction": fraction, "edit_method": method, "seed": seed,
                                 "score": score - 0.02 * seed * (method != "swap"), "num_facts": 512, "draws": 2,
                                 "tune": True})
    return pd.DataFrame(rows)


def test_fact_editing_scores_by_method_and_fraction_with_intervals():
    frame = editing_cells()
    varying = ("fact_mlp", "width", "edit_fraction", "edit_method", "seed")
    fig = figures.draw(frame, [], spec_of(EDITING, "scores_by_method"), EDITING, varying, "Edit score")
    assert [ax.get_title() for ax in fig.axes] == ["fact MLP = gd", "fact MLP = hebbian_whitened"]
    fig.canvas.draw()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.02", "0.1"]
    intervals = [c for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"]
    assert len(intervals) == 3 * 2 * 2  # a vertical bar and its caps per method and fraction
    assert {"swap", "rank_one", "fine_tune"} <= set(legend_texts(fig))
    assert fig.axes[0].get_ylim()[1] <= 1.0 + 0.05
    inside_canvas(fig)


def test_tick_labels_and_declarations_stay_readable_and_compatible():
    assert [figure_style.human(v) for v in (500, 2000, 20_000, 1e6, 1.5e6)] == ["500", "2000", "20k", "1M", "1.5M"]
    assert list(figure_style.log_ticks(1, 1e4, np.array([1, 1e4]), False)) == [1, 10, 100, 1000, 10000]
    old = FigureSpec("f", "x", "y", "method", "d", title="t")  # a declaration of before: defaults for the rest
    assert (old.kind, old.group, old.reference, old.top, old.ceiling) == ("points", None, None, None, False)
    with pytest.raises(ValueError, match="allowed: points, curves, intervals"):
        FigureSpec("f", "x", "y", "method", kind="bars")


def test_one_colour_per_method_and_one_marker_per_d_in_every_sweep():
    methods = set(CAPACITY.params["method"].choices) | set(USABILITY.params["method"].choices)
    assert {figure_style.colour(m) for m in methods} == {figure_style.COLOURS[m] for m in methods}
    assert len({figure_style.colour(m) for m in methods}) == len(methods)
    assert figure_style.colour("gd") == "#1b1b1b"  # not the order of appearance in a sweep
    ds = (8, 16, 32, 64, 90, 128, 256, 384)
    assert len({figure_style.marker(d) for d in ds}) == len(ds)


def test_a_new_method_leaves_every_other_colour_unchanged(monkeypatch):
    """A kind that declares a new method (first, so it would take the first colour of an ordered
    palette): the style is loaded again beside it, and every known method keeps its colour; the new
    one gets a colour no known method has."""
    import dataclasses
    import importlib
    known = sorted({str(m) for e in registry.every().values() for f in e.reporting.figures
                    for m in getattr(e.params.get(f.series), "choices", None) or ()})
    before = {m: figure_style.colour(m) for m in known}
    method = CAPACITY.params["method"]
    newer = dataclasses.replace(CAPACITY, name="newer", params={
        **CAPACITY.params, "method": dataclasses.replace(method, choices=("aaa_new",) + method.choices)})
    every = registry.every()
    monkeypatch.setattr(registry, "every", lambda: {"newer": newer, **every})
    try:
        importlib.reload(figure_style)
        assert {m: figure_style.colour(m) for m in known} == before
        assert figure_style.colour("aaa_new") not in before.values()
    finally:
        monkeypatch.undo()
        importlib.reload(figure_style)


SEEDS = "seeds: [0, 1]\n"  # the tiny capacity sweep of tests/conftest.py, twice


@pytest.mark.slow  # a real tiny sweep (8 cells) through Ray
def test_figures_of_a_real_tiny_sweep(ray_session, tiny_sweep, shared_tracking):
    from orchestrator.report import write_report
    from orchestrator.runner import run_sweep
    from orchestrator.scope import Scope
    from orchestrator.spec import load_spec
    from orchestrator.store import Store

    spec = load_spec(tiny_sweep("figs", SEEDS), [shared_tracking])
    run_sweep(spec, progress=False)
    paths, _, _ = write_report(Scope.of_spec(spec), n_boot=20)
    names = {p.name for p in paths}
    assert {"figs-facts_vs_params.png", "figs-accuracy_vs_width.png"} <= names
    assert "figs-params_vs_inverse_rho.png" not in names  # the sweep does not move ρ
    store = Store(spec.results_root)
    probes = store.load("probes", "figs")
    probes = probes[probes["status"] == "ok"]
    varying = ("method", "num_facts", "seed")
    fig = figures.draw(probes, [], spec_of(CAPACITY, "accuracy_vs_width"), CAPACITY, varying, "Accuracy")
    assert [ax.get_title() for ax in fig.axes] == ["gd", "hebbian_whitened"]  # a panel per method
    for ax in fig.axes:
        assert len(ax.lines) == 2  # one median per F over the two seeds, never a line per seed
        assert all(0 <= y <= 1 for line in ax.lines for y in line.get_ydata() if y == y)
    assert {"F = 8", "F = 16"} <= set(legend_texts(fig))
    inside_canvas(fig)


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
