"""Reports of a sweep: the summary table, a facts-vs-parameters figure and a markdown page."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from factmlp.experiments import REGISTRY  # noqa: E402
from orchestrator.store import Store  # noqa: E402
from orchestrator.tables import markdown  # noqa: E402


def summary_table(cells: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    present = [c for c in columns if c in cells]
    return cells[present].sort_values(present[:4]).reset_index(drop=True) if len(cells) else cells


def figure(cells: pd.DataFrame, spec: dict, title: str, path: Path) -> Path:
    """log2 y against log2 x, one colour per series and one marker per ``marker`` value."""
    x, y, series, marker = spec["x"], spec["y"], spec["series"], spec.get("marker")
    found = cells.dropna(subset=[x]) if x in cells else cells.iloc[0:0]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=150)
    markers = "osD^vP*X"
    marker_values = sorted(found[marker].unique()) if marker and len(found) else [None]
    for i, (name, group) in enumerate(sorted(found.groupby(series), key=lambda kv: str(kv[0])) if len(found) else []):
        for j, m in enumerate(marker_values):
            part = group if m is None else group[group[marker] == m]
            if len(part):
                part = part.sort_values(y)
                ax.plot(part[x], part[y], marker=markers[j % len(markers)], color=f"C{i}",
                        label=f"{name}" + (f", {marker}={m}" if m is not None else ""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel(f"{x} (W)" if x == "params" else x)
    ax.set_ylabel("facts F" if y == "num_facts" else y)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(found):
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(root: str | Path, sweep: str) -> tuple[Path, Path, pd.DataFrame]:
    """Write ``<root>/reports/<sweep>.png`` and ``.md``; return their paths and the summary table."""
    store = Store(root)
    cells = store.load("cells", sweep)
    if not len(cells):
        raise LookupError(f"no finished cells for sweep {sweep!r} under {root}")
    experiment = REGISTRY[cells["experiment"].iloc[0]]
    table = summary_table(cells, experiment.summary_columns)
    out = Path(root) / "reports"
    png = figure(cells, experiment.figure, f"{sweep}: facts stored vs parameters", out / f"{sweep}.png")
    md = out / f"{sweep}.md"
    text = (f"# Sweep `{sweep}`\n\n{len(cells)} finished cells, experiment `{experiment.name}`.\n\n"
            f"![facts vs parameters]({png.name})\n\n{markdown(table)}\n")
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(text)
    tmp.replace(md)
    return png, md, table
