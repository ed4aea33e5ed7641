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


def _gaps(cells: list[dict]) -> list[str]:
    """At the largest F that every method stored, how many times more parameters each needs."""
    lines = []
    by_setting = defaultdict(dict)
    for c in cells:
        if c.get("params") is not None and not (isinstance(c["params"], float) and math.isnan(c["params"])):
            by_setting[(c["geometry"], c["d"])].setdefault(c["method"], {})[c["num_facts"]] = c["params"]
    for (geometry, d), methods in sorted(by_setting.items()):
        if len(methods) < 2:
            continue
        common = set.intersection(*(set(f) for f in methods.values()))
        if not common:
            continue
        facts = max(common)
        ranked = sorted(methods, key=lambda m: methods[m][facts])
        base = REFERENCE if REFERENCE in methods else ranked[0]
        for m in ranked:
            if m != base:
                ratio = methods[m][facts] / methods[base][facts]
                lines.append(f"- {geometry}, d = {d}, F = {facts}: {base} needs {_fmt(ratio)}× fewer parameters than "
                             f"{m} ({methods[base][facts]:,} vs {methods[m][facts]:,}).")
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
    for (geometry, method), f in sorted(power.items()):
        if method != PRIOR:
            continue
        others = [g for (geo, m), g in power.items() if geo == geometry and m != PRIOR]
        if others:
            worse = all(f["s_high"] < g["s_low"] for g in others)
            best = max(others, key=lambda g: g["s"])
            lines.append(f"- The prior construction scales worse ({geometry}): {'holds' if worse else 'not shown'} — "
                         f"{PRIOR} slope {_fmt(f['s'])} vs {best['method']} {_fmt(best['s'])}.")
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
    sections = [("Gaps between methods", _gaps(cells)), ("Asymptotics", _slopes(fits)),
                ("Constants", _constants(fits)), ("Decodability ρ and cost", _rho(fits))]
    return "\n\n".join(f"### {title}\n\n" + "\n".join(lines) for title, lines in sections if lines)
