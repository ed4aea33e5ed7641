"""Findings of a fixed-grid sweep: what each grid axis does to the measured metric, judged over seeds.

Along every axis the sweep varies (width, F, β, query noise ε), within each setting of the other
parameters: the metric at each grid point with its interval over seeds; whether it rises or falls
from the first grid value to the last (paired by seed); for recall, at which grid points > 99% holds;
for query noise, where that bar is crossed against the revised paper's scale √(d/(F ln F)). Only
measured points are named, never a value between or beyond them (``verdicts`` sets the rules).
"""
from __future__ import annotations

import numbers

from factmlp.experiments.verdicts import DIFFERENCE, FRACTION, MIN_SEEDS, against, by, fmt, paired, seeds_of, summary
from orchestrator.experiment import is_set

AXES = ("width", "num_facts", "beta", "query_eps")
SETTING = ("probe", "schedule", "method", "whiten", "geometry", "d") + AXES
NAMES = {"width": "width", "num_facts": "F", "beta": "β", "query_eps": "ε"}
METRIC_NAMES = {"margin_min": "γ_min", "recall_noisy": "recall under query noise", "recall": "recall inside the "
                "Transformer"}
RECALL = 0.99  # the paper's bar
# γ of unit values (the spherical and spike geometries this kind builds) lies in [−2, 2], a difference
# of two in [−4, 4]: intervals on the logit scale within these never run past a bound.
MARGIN, MARGIN_DIFFERENCE = (-2.0, 2.0), (-4.0, 4.0)


def metric_of(probe: str, axis: str) -> str:
    """What a figure of this axis plots: recall inside the Transformer, recall as ε grows, else γ_min."""
    if probe == "transformer":
        return "recall"
    return "recall_noisy" if axis == "query_eps" else "margin_min"


def _num(value):
    return float(value) if is_set(value) else value


def _in_order(groups: dict) -> list:
    """Groups by their key with numbers in numeric order (F = 128 before 1024)."""
    def order(key):
        return tuple((0, float(v), "") if isinstance(v, numbers.Number) and not isinstance(v, bool)
                     else (1, 0.0, str(v)) for v in key)
    return sorted(groups.items(), key=lambda kv: order(kv[0]))


def _describe(setting: dict, axis: str) -> str:
    method = f"{setting['method']}{' whitened' if setting.get('whiten') else ''}"
    if setting.get("probe") == "transformer":
        method += f" in the Transformer ({setting.get('schedule')})"
    fixed = [f"{NAMES.get(k, k)} = {fmt(_num(v))}" for k, v in setting.items()
             if k in ("d",) + AXES and k != axis and is_set(v) and not (k in ("beta", "query_eps") and v == 0)]
    return ", ".join([method] + fixed)


def _points(rows: list[dict], axis: str, metric: str, bounds) -> list[tuple[float, list[dict], str]]:
    out = []
    for value, part in sorted(by(rows, (axis,)).items(), key=lambda kv: float(kv[0][0])):
        values = [r.get(metric) for r in part if is_set(r.get(metric))]
        mean, low, high, n = summary(values, bounds)
        text = f"{fmt(values[0])} in every seed" if len(set(values)) == 1 else f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"
        out.append((float(value[0]), part, text))
    return out


def _trend(points, metric: str, axis: str, bounds) -> str:
    (first, rows_a, _), (last, rows_b, _) = points[0], points[-1]
    diff = paired(rows_b, rows_a, metric)
    rises, numbers = against(diff, 0.0, above=True, bounds=bounds)
    falls, _ = against(diff, 0.0, above=False, bounds=bounds)
    verdict = ("rises" if rises == "holds" else "falls" if falls == "holds"
               else rises if rises.startswith("inconclusive") else "inconclusive — the interval contains 0")
    return (f"{METRIC_NAMES[metric]}({NAMES[axis]} = {fmt(last)}) − {METRIC_NAMES[metric]}({NAMES[axis]} = "
            f"{fmt(first)}) = {numbers} (paired by seed): {verdict}")


def _side(rows: list[dict], metric: str) -> str:
    """'holds' / 'does not hold' (interval over seeds on one side of 99%), 'every seed above' / 'every
    seed below' (identical replicates: no interval, so no verdict, but every measurement on one side),
    or 'inconclusive'."""
    values = [r.get(metric) for r in rows if is_set(r.get(metric))]
    verdict, _ = against(values, RECALL, bounds=FRACTION)
    if verdict in ("holds", "does not hold"):
        return verdict
    if len(values) >= MIN_SEEDS and len(set(values)) == 1:
        return "every seed above (identical)" if values[0] > RECALL else "every seed below (identical)"
    return "inconclusive"


def _bar(points, metric: str, axis: str) -> str:
    """Where > 99% recall holds, does not hold, or cannot be told, point by point."""
    verdicts: dict[str, list[str]] = {}
    for value, rows, _ in points:
        verdicts.setdefault(_side(rows, metric), []).append(fmt(value))
    return "; ".join(f"{k} at {NAMES[axis]} = {', '.join(v)}" for k, v in verdicts.items())


def _law(points, rows: list[dict]) -> str:
    """The noisy-query law at measured ε only: the largest ε where > 99% recall holds and the smallest
    where it does not, against √(d/(F ln F))."""
    held, failed = [], []
    for value, part, _ in points:
        side = _side(part, "recall_noisy")
        (held if side in ("holds", "every seed above (identical)") else failed
         if side in ("does not hold", "every seed below (identical)") else []).append(value)
    scale = summary([r.get("noise_scale") for r in rows])[0]
    last_held = max((v for v in held if not any(f < v for f in failed)), default=None)
    first_failed = min(failed, default=None)
    if last_held is None or first_failed is None:
        return (f"the noisy-query law: inconclusive — > 99% recall {'never holds' if last_held is None else 'never fails'}"
                f" on the measured ε; √(d/(F ln F)) = {fmt(scale)}")
    return (f"the noisy-query law: recall is above 99% (holds, or every seed above) up to ε = {fmt(last_held)} "
            f"and below it (does not hold, or every seed below) from ε = {fmt(first_failed)} (measured points), i.e. the threshold lies in [{fmt(last_held / scale)}, "
            f"{fmt(first_failed / scale)}] × √(d/(F ln F)) = {fmt(scale)}")


def _whitening(cells: list[dict]) -> list[str]:
    """Where the sweep has both variants: whitened − plain at each grid point, paired by seed (the
    capacity–usability tradeoff point by point)."""
    if len({bool(c.get("whiten")) for c in cells}) < 2:
        return []
    lines = []
    others = tuple(k for k in SETTING if k != "whiten")
    for key, rows in _in_order(by(cells, others)):
        setting = dict(zip(others, key))
        plain = [r for r in rows if not r.get("whiten")]
        white = [r for r in rows if r.get("whiten")]
        noisy = is_set(setting.get("query_eps")) and setting["query_eps"] != 0
        metrics = (("recall",) if setting.get("probe") == "transformer" else ("recall_noisy",) if noisy
                   else ("margin_min",))
        for metric in metrics:
            diff = paired(white, plain, metric)
            if not diff:
                continue
            bounds = MARGIN_DIFFERENCE if metric == "margin_min" else DIFFERENCE
            up, numbers = against(diff, 0.0, above=True, bounds=bounds)
            down, _ = against(diff, 0.0, above=False, bounds=bounds)
            verdict = ("raises it" if up == "holds" else "lowers it" if down == "holds"
                       else up if up.startswith("inconclusive") else "inconclusive — the interval contains 0")
            name = _describe({**setting, "whiten": False}, None)
            lines.append(f"- Whitening, {name}: {METRIC_NAMES[metric]}(whitened) − {METRIC_NAMES[metric]}(plain) = "
                         f"{numbers} (paired by seed): {verdict}.")
    return lines


def fixed_grid_findings(cells: list[dict], fits: list[dict]) -> str:
    """Per axis that varies, per setting of the other parameters: the metric at each point with its
    interval, its trend from the first grid value to the last, and the recall bar where it applies."""
    lines = [f"Intervals are 95% t intervals over seeds (on the logit scale within the bounds of recall, [0, 1], and "
             f"of γ, [−2, 2]); a verdict needs ≥ {MIN_SEEDS} "
             "seeds and an interval wholly on one side; otherwise inconclusive. Only measured grid points are named."]
    varying = [a for a in AXES if len({_num(c.get(a)) for c in cells if is_set(c.get(a))}) > 1]
    for axis in varying:
        others = tuple(k for k in SETTING if k != axis)
        for key, rows in _in_order(by(cells, others)):
            setting = dict(zip(others, key))
            metric = metric_of(setting.get("probe"), axis)
            if not any(is_set(r.get(metric)) for r in rows):
                continue
            if metric == "margin_min" and is_set(setting.get("query_eps")) and setting["query_eps"] != 0:
                continue  # γ_min is measured on the clean keys: the same at every ε, so said once (at ε = 0)
            bounds = FRACTION if metric != "margin_min" else MARGIN
            points = _points(rows, axis, metric, bounds)
            if len(points) < 2:
                continue
            name = f"{_describe(setting, axis)} (seeds {seeds_of(rows)})"
            values = ", ".join(f"{fmt(v)}: {text}" for v, _, text in points)
            lines.append(f"- {METRIC_NAMES[metric]} vs {NAMES[axis]}, {name}: {values}. "
                         f"{_trend(points, metric, axis, MARGIN_DIFFERENCE if metric == 'margin_min' else DIFFERENCE)}.")
            if metric != "margin_min":
                lines.append(f"  > 99% recall: {_bar(points, metric, axis)}.")
            if metric == "recall":
                alone = ", ".join(f"{fmt(v)}: {fmt(summary([r.get('accuracy') for r in part])[0])}"
                                  for v, part, _ in points)
                lines.append(f"  the MLP's standalone accuracy (mean) by {NAMES[axis]}: {alone}.")
            if metric == "margin_min" and any(is_set(r.get("rho")) for r in rows) and axis == "beta":
                rho = ", ".join(f"{fmt(v)}: {fmt(summary([r.get('rho') for r in part])[0])}" for v, part, _ in points)
                lines.append(f"  ρ of the values by β: {rho}.")
            if axis == "query_eps":
                lines.append(f"  {_law(points, rows)}.")
    lines += _whitening(cells)
    if len(lines) == 1:
        lines.append("- No axis varies with two or more grid values: nothing to compare.")
    return "\n".join(lines)
