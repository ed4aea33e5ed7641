"""What a cell run and the sweep run show in MLflow: names, the parameters that apply, rounding, the
HTML report with its figures inline, the charts, and no empty "Default" experiment (real MLflow)."""
from __future__ import annotations

import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from orchestrator import dashboard, parallel, report_html, scaling_chart  # noqa: E402
from orchestrator.registry import get  # noqa: E402


PARAMS = get("capacity").params


def capacity_cell(**given) -> dict:
    return get("capacity").resolve({"method": "gd", "d": 8, "num_facts": 16, "seed": 3, **given})


def test_run_names_always_end_with_the_seed():
    cell = capacity_cell()
    assert dashboard.run_name(cell, ["method", "num_facts"], set(), "c" * 16) == "gd num_facts=16 seed=3"
    assert dashboard.run_name(cell, ["method", "seed", "d"], set(), "c" * 16) == "gd d=8 seed=3"
    taken = {"gd num_facts=16 seed=3"}
    assert dashboard.run_name(cell, ["method", "num_facts"], taken, "abcdef0123") == "gd num_facts=16 seed=3 #abcdef"


def test_a_spherical_gd_cell_shows_only_the_parameters_that_apply_to_it():
    cell = capacity_cell()
    assert {"beta", "spike_on", "kappa"} <= set(cell) and any(k.startswith("llm_") for k in cell)  # all in its id
    shown = dashboard.shown_params(cell, ("method", "num_facts"), PARAMS)
    assert not {"beta", "spike_on", "spike_axis", "kappa", "condition_on"} & set(shown)
    assert not [k for k in shown if k.startswith("llm_")]
    assert {"method", "geometry", "d", "num_facts", "seed", "gd_epochs", "gd_lr"} <= set(shown)
    assert not [k for k in shown if k.startswith("hebbian")]  # another method's options never reach a cell


def test_a_geometry_option_shows_when_set_or_swept():
    spiked = dashboard.shown_params(capacity_cell(geometry="spike", beta=2.0), (), PARAMS)
    assert spiked["beta"] == 2.0 and "llm_model" not in spiked
    assert "kappa" in dashboard.shown_params(capacity_cell(), ("kappa",), PARAMS)  # the file varies it: every cell shows it


def test_numbers_are_shown_rounded_but_never_so_that_two_values_look_alike():
    assert dashboard.display(0.1 + 0.2) == "0.3"  # float noise of a computed grid value
    assert dashboard.display(0.123456789) == "0.123456789"  # a real value: 4 digits would merge it with others
    assert dashboard.display(0.02) == "0.02" and dashboard.display(300) == "300" and dashboard.display("gd") == "gd"
    assert dashboard.rounded(0.123456789) == 0.1235 and dashboard.rounded(2 / 3) == 0.6667
    assert dashboard.rounded(123457.0) == 123457.0  # parameter counts and widths stay exact


def test_every_link_opens_the_model_training_view():
    for link in (dashboard.url("http://h:5000/", "7"), dashboard.run_url("http://h:5000", "7", "abc"),
                 dashboard.home_url("http://h:5000")):
        assert re.search(r"#/experiments[^?]*\?(.*&)?workflowType=machine_learning(&|$)", link), link
    assert dashboard.run_url("http://h:5000", "7", "abc").startswith("http://h:5000/#/experiments/7/runs/abc?")


def test_the_shared_view_saves_the_chart_cards():
    import json
    state = json.loads(dashboard.view_state(["method", "d", "num_facts"], ["min_width", "params", "rho"]))
    cards = {c["uuid"]: c for c in state["compareRunCharts"]}
    scatter = cards["factsweep-min_width-vs-num_facts"]
    assert scatter["xaxis"] == {"key": "num_facts", "type": "PARAM"} and scatter["yaxis"]["key"] == "min_width"
    assert cards["factsweep-parallel"]["selectedParams"] == ["method", "d", "num_facts"]
    assert {c["metricSectionId"] for c in cards.values()} == {s["uuid"] for s in state["compareRunSections"]}


def test_the_html_report_carries_its_figures_inline(tmp_path):
    fig, axis = plt.subplots(figsize=(2, 2))
    axis.plot([1, 2], [3, 4])
    fig.savefig(tmp_path / "s-fig.png")
    plt.close(fig)
    (tmp_path / "s.md").write_text("# Sweep `s`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                  "![s-fig](s-fig.png) ([PDF](s-fig.pdf))\n\n![gone](missing.png)\n")
    page = report_html.render(tmp_path / "s.md")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 and sources[1] == "missing.png"  # a figure that is not there stays a name
    assert base64.b64decode(sources[0].split(",", 1)[1]) == (tmp_path / "s-fig.png").read_bytes()
    assert "<table>" in page and 'href="s-fig.pdf"' in page


def cells_frame() -> pd.DataFrame:
    rows = []
    for method, base in (("gd", 1.0), ("hebbian_whitened", 4.0)):
        for facts in (8, 16, 32):
            for seed in (0, 1):
                rows.append({"method": method, "num_facts": facts, "seed": seed, "d": 8,
                             "min_width": base * facts ** 0.5 + seed, "params": 8 * (base * facts ** 0.5 + seed)})
    rows.append({"method": "gd", "num_facts": 64, "seed": 0, "d": 8, "min_width": None, "params": None})
    return pd.DataFrame(rows)


def test_the_charts_are_drawn_when_the_cells_vary_and_skipped_when_not(tmp_path):
    frame = cells_frame()
    varying = ("method", "num_facts", "seed")
    assert scaling_chart.series_keys(frame, varying) == ["method"]
    for draw, name in ((scaling_chart.draw, "a.png"), (parallel.draw, "b.png")):
        out = draw(frame, varying, tmp_path / name)
        assert out == tmp_path / name and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_size = frame[frame["num_facts"] == 8]
    assert scaling_chart.draw(one_size, ("method",), tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_parallel_axes_place_values_in_order_and_log_spaced_when_wide():
    where, ticks = parallel._axis(pd.Series([1.0, 10.0, 100.0, None]))
    assert list(where[:3]) == [0.05, 0.525, 1.0] and where[3] == 0.0  # log axis: 10 halfway; missing at the foot
    where, _ = parallel._axis(pd.Series(["gd", "hebbian", "gd"]))
    assert where[0] == where[2] and where[0] < where[1]


def test_a_new_store_has_no_active_default_experiment(tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import create_sqlite_store, retire_default, sqlite_uri
    create_sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=sqlite_uri(tmp_path / "mlflow.db"))
    assert [e.name for e in client.search_experiments()] == []
    assert client.get_experiment("0").lifecycle_stage == "deleted"
    client.restore_experiment("0")
    client.create_run("0")
    retire_default(client)  # a Default someone logged a run to stays
    assert client.get_experiment("0").lifecycle_stage == "active"
