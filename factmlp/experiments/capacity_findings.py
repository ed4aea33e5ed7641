"""The paper's capacity claims checked in words and numbers against a sweep's cells and fits.

Claims (SCIENCE.md §7): constructed and GD MLPs have matching asymptotics (power-law slopes); GD has
the smaller constant; the prior (NTK) construction scales worse; ρ predicts the cost of both.
Works on plain row dicts so factmlp stays free of dataframe libraries.
"""
from __future__ import annotations

import math
from collections import defaultdict

from factmlp.scaling import B_MAX

REFERENCE = "gd"
PRIOR = "ntk"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _interval(fit: dict, name: str) -> str:
    return f"{_fmt(fit[name])} [{_fmt(fit[name + '_low'])}, {_fmt(fit[name + '_high'])}]"


def _stored(c: dict) -> bool:
    return c.get("params") is not None and not (isinstance(c["params"], float) and math.isnan(c["params"]))


def _setting(c: dict) -> str:
    """The fact-set geometry a cell was measured on, as the report names it."""
    label = f"{c['geometry']}, d = {c['d']}"
    if c["geometry"] == "spike":
        label += f", β = {c.get('beta', 0.0):g}"
    if c["geometry"] == "condition":
        label += f", κ = {c.get('kappa', 0.0):g}"
    return label + (", whitened" if c.get("whiten") else "")


def _gaps(cells: list[dict]) -> list[str]:
    """Per method, at the largest F it and GD both stored: how many times more parameters it needs;
    and each F where a method stored nothing in its search range."""
    lines = []
    by_setting, labels = defaultdict(dict), {}
    for c in cells:
        if _stored(c):
            key = (c["geometry"], c["d"], c.get("beta", 0.0), c.get("kappa", 0.0), bool(c.get("whiten")))
            labels[key] = _setting(c)
            by_setting[key].setdefault(c["method"], {})[c["num_facts"]] = c["params"]
    for key, methods in sorted(by_setting.items()):
        setting = labels[key]
        base = REFERENCE if REFERENCE in methods else min(methods, key=lambda m: min(methods[m].values()))
        for m in sorted(methods):
            common = set(methods[m]) & set(methods[base])
            if m == base or not common:
                continue
            facts = max(common)
            ratio = methods[m][facts] / methods[base][facts]
            lines.append(f"- {setting}, F = {facts}: {base} needs {_fmt(ratio)}× fewer parameters than "
                         f"{m} ({methods[base][facts]:,.0f} vs {methods[m][facts]:,.0f}).")
    for c in sorted((c for c in cells if not _stored(c)), key=lambda c: (_setting(c), c["method"], c["num_facts"])):
        lines.append(f"- {_setting(c)}, F = {c['num_facts']}: {c['method']} stores nothing up to width "
                     f"{c.get('search_high', '?')} (best accuracy {_fmt(c.get('best_accuracy', float('nan')))}, "
                     f"threshold {c.get('threshold', 1.0)}).")
    return lines


def _prior(cells: list[dict], fits: list[dict]) -> list[str]:
    """The prior construction scales worse: a steeper cost slope, or it stops storing where GD still does."""
    power = _by_method(fits, "power")
    lines = []
    for geometry in sorted({c["geometry"] for c in cells if c["method"] == PRIOR}):
        prior = power.get((geometry, PRIOR))
        others = [g for (geo, m), g in power.items() if geo == geometry and m != PRIOR]
        if prior is not None and others:
            worse = all(prior["s_high"] < g["s_low"] for g in others)
            best = max(others, key=lambda g: g["s"])
            lines.append(f"- The prior construction scales worse ({geometry}): {'holds' if worse else 'not shown'} — "
                         f"{PRIOR} slope {_fmt(prior['s'])} [{_fmt(prior['s_low'])}, {_fmt(prior['s_high'])}] "
                         f"vs {best['method']} {_fmt(best['s'])} (F gained per doubling of W).")
        lost = sorted({(c["d"], c["num_facts"]) for c in cells if c["geometry"] == geometry and c["method"] == PRIOR
                       and not _stored(c)})
        kept = {(c["d"], c["num_facts"]): c["params"] for c in cells
                if c["geometry"] == geometry and c["method"] == REFERENCE and _stored(c)}
        lost = [x for x in lost if x in kept]
        if lost:
            d, facts = lost[0]
            lines.append(f"- The prior construction scales worse ({geometry}): holds — at d = {d} {PRIOR} stores "
                         f"nothing at F = {facts} within its search range, where {REFERENCE} needs "
                         f"{kept[(d, facts)]:,.0f} parameters.")
    return lines


def _by_method(fits: list[dict], law: str) -> dict[tuple, dict]:
    return {(f["geometry"], f["method"]): f for f in fits if f["law"] == law}


def _slopes(fits: list[dict]) -> list[str]:
    power = _by_method(fits, "power")
    lines = []
    for (geometry, method), f in sorted(power.items()):
        lines.append(f"- {method} ({geometry}): slope s = {_interval(f, 's')} (log2 F = s·log2 W + c, R² = {_fmt(f['r2'])}).")
    for (geometry, method), f in sorted(power.items()):
        ref = power.get((geometry, REFERENCE))
        if method in (REFERENCE, PRIOR) or ref is None:
            continue
        overlap = f["s_low"] <= ref["s_high"] and ref["s_low"] <= f["s_high"]
        lines.append(f"- Matching asymptotics, {method} vs {REFERENCE} ({geometry}): "
                     f"{'holds' if overlap else 'does not hold'} — slopes {_fmt(f['s'])} vs {_fmt(ref['s'])}, "
                     f"intervals {'overlap' if overlap else 'are disjoint'}.")
    return lines


def _constants(fits: list[dict]) -> list[str]:
    size = _by_method(fits, "size")
    lines = []
    for (geometry, method), f in sorted(size.items()):
        edge = " (b at the top of its search grid: no log factor is visible over these F)" if f["b"] >= B_MAX - 0.5 else ""
        lines.append(f"- {method} ({geometry}): W = C·F·(log2 F + b) with C = {_interval(f, 'C')}, "
                     f"b = {_fmt(f['b'])}{edge}.")
    for (geometry, method), f in sorted(size.items()):
        ref = size.get((geometry, REFERENCE))
        if ref is None or method == REFERENCE:
            continue
        f_ref = ref["C"] * (math.log2(4096) + ref["b"])
        f_m = f["C"] * (math.log2(4096) + f["b"])
        lines.append(f"- {REFERENCE} has the smaller constant than {method} ({geometry}): "
                     f"{'holds' if f_ref < f_m else 'does not hold'} — parameters per fact at F = 4096 "
                     f"from the fits: {_fmt(f_ref)} vs {_fmt(f_m)}.")
    return lines


def _rho(fits: list[dict]) -> list[str]:
    lines = []
    for f in sorted((f for f in fits if f["law"] == "rho"), key=lambda f: (f["method"], f["d"], f["num_facts"])):
        lines.append(f"- {f['method']} (d = {f['d']}, F = {f['num_facts']}, {f['n']} cells): "
                     f"log W = a + p·log(1/ρ) with p = {_interval(f, 'p')}, R² = {_fmt(f['r2'])} — ρ "
                     f"{'predicts' if f['r2'] >= 0.8 else 'does not clearly predict'} the cost.")
    return lines


def capacity_findings(cells: list[dict], fits: list[dict]) -> str:
    sections = [("Gaps between methods", _gaps(cells)), ("Asymptotics", _slopes(fits) + _prior(cells, fits)),
                ("Constants", _constants(fits)), ("Decodability ρ and cost", _rho(fits))]
    return "\n\n".join(f"### {title}\n\n" + "\n".join(lines) for title, lines in sections if lines)
