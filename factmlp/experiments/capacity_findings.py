"""The paper's capacity claims, judged only as far as a sweep's cells support them.

Claims (docs/science.md#the-papers-claims-and-where-they-are-tested): constructed and GD MLPs have matching asymptotics (power-law slopes); GD
has the smaller constant; the prior (NTK) construction scales worse; ρ predicts the cost.

Rules a verdict must pass, else the finding says "inconclusive" and why:
- evidence: each method compared stored at ≥ 4 values of F, spanning ≥ 3 octaves, each in ≥ 3 seeds;
- like for like: a contrast of two methods uses only the F (and seeds) where both stored; a method
  that stores nothing at an F where GD stores does not match GD's asymptotics at that d;
- "matching asymptotics" is an equivalence statement: the 95% interval of the slope difference
  (method − GD, paired over the shared fact sets) lies inside ±0.1 → holds; entirely outside → does
  not hold; otherwise inconclusive (overlapping intervals alone prove nothing). The interval is the
  wider of a stratified bootstrap and a t interval over per-seed fits (3 seeds: the bootstrap alone
  is too narrow), and the finding names which;
- costs are compared only at values of F that were measured (no extrapolation), under both counting
  conventions where they differ (factmlp/mlp.py: dense and distinct), and a difference smaller than
  one step of the width search is "below resolution", not "the same";
- a degenerate fit (parameter at its grid edge, R² < 0.5, < 3 points) is a warning, never a number;
- every finding names the cells and seeds it used.
Works on plain row dicts so factmlp stays free of dataframe libraries.
"""
from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from factmlp.experiments.verdicts import MIN_SEEDS, fmt, paired, seeds_of, summary
from factmlp.scaling import BOOTSTRAP, fit, paired_difference
from orchestrator.statistics import interval

REFERENCE = "gd"
PRIOR = "ntk"
MARGIN = 0.1  # slope difference counted as "the same asymptotics"
MIN_FACTS, MIN_OCTAVES = 4, 3.0
ROW_KEYS = ("method", "num_facts", "seed")  # what varies inside one setting
SYMBOLS = {"num_facts": "F"}


def _stored(c: dict) -> bool:
    p = c.get("params")
    return p is not None and not (isinstance(p, float) and math.isnan(p))


def _value(c: dict, key: str):
    """A cell's parameter, None where the cell has none (another method's option: absent, or NaN in a table)."""
    v = c.get(key)
    return None if isinstance(v, float) and math.isnan(v) else v


def _settings(cells: list[dict], params) -> dict[tuple, list[dict]]:
    """Cells by setting: one per combination of the parameters (other than method, F and seed) that
    vary among the cells that have them. A method's own option (other methods' cells lack it) that
    varies sets its values apart, and the cells without it belong to each of them."""
    keys = [k for k in params if k not in ROW_KEYS]
    values = {k: sorted({repr(_value(c, k)) for c in cells if _value(c, k) is not None}) for k in keys}
    keys = [k for k in keys if len(values[k]) > 1]
    settings = defaultdict(list)
    for c in cells:
        for combo in itertools.product(*([repr(_value(c, k))] if _value(c, k) is not None else values[k]
                                         for k in keys)):
            settings[tuple(zip(keys, combo))].append(c)
    return settings


def _label(c: dict, setting: tuple) -> str:
    base = f"{c.get('geometry', '?')}, d = {c.get('d', '?')}"
    extra = [k + " = " + v.strip("'") for k, v in setting if k not in ("geometry", "d")]  # v: a repr
    return ", ".join([base] + extra)


def _cells_named(rows: list[dict]) -> str:
    facts = ", ".join(str(f) for f in sorted({r["num_facts"] for r in rows}))
    return f"F = {facts}; seeds {seeds_of(rows)}; {len(rows)} cells"


class Method:
    """One method's cells in one setting: which (F, seed) stored and with how many parameters."""

    def __init__(self, name: str, rows: list[dict]):
        self.name, self.rows = name, rows
        self.stored = [r for r in rows if _stored(r)]
        by_f = defaultdict(set)
        for r in self.stored:
            by_f[r["num_facts"]].add(r.get("seed", 0))
        self.facts = sorted(f for f, seeds in by_f.items() if len(seeds) >= MIN_SEEDS)

    def evidence(self) -> str | None:
        """Why this method's cells cannot carry a verdict (None when they can)."""
        octaves = math.log2(max(self.facts) / min(self.facts)) if self.facts else 0.0
        if len(self.facts) >= MIN_FACTS and octaves >= MIN_OCTAVES:
            return None
        return (f"{self.name} stored at {len(self.facts)} value(s) of F in ≥ {MIN_SEEDS} seeds, spanning "
                f"{octaves:.1f} octaves (a verdict needs ≥ {MIN_FACTS} values over ≥ {MIN_OCTAVES:g} octaves)")

    def sample(self, facts=None, seeds=None) -> tuple:
        """(F, params, seed) of the stored cells, at ``facts`` (default: this method's) and, per F, the
        ``seeds`` given (a dict F → seeds; default: every stored seed)."""
        facts = self.facts if facts is None else facts
        rows = [r for r in self.stored if r["num_facts"] in facts
                and (seeds is None or r.get("seed", 0) in seeds.get(r["num_facts"], ()))]
        return ([r["num_facts"] for r in rows], [r["params"] for r in rows], [r.get("seed", 0) for r in rows])

    def seeds_at(self, facts: int) -> set:
        return {r.get("seed", 0) for r in self.stored if r["num_facts"] == facts}

    def cost(self, facts: int, column: str = "params") -> dict[int, float]:
        return {r.get("seed", 0): r[column] for r in self.stored if r["num_facts"] == facts
                and _value(r, column) is not None}

    def lost(self) -> dict[int, list[dict]]:
        """The cells that stored nothing, by F."""
        out = defaultdict(list)
        for r in self.rows:
            if not _stored(r):
                out[r["num_facts"]].append(r)
        return dict(sorted(out.items()))


class Common:
    """Two methods on like terms: the F where both stored in ≥ MIN_SEEDS common seeds, those seeds."""

    def __init__(self, a: Method, b: Method):
        self.a, self.b = a, b
        self.seeds = {f: a.seeds_at(f) & b.seeds_at(f) for f in sorted(set(a.facts) & set(b.facts))}
        self.seeds = {f: s for f, s in self.seeds.items() if len(s) >= MIN_SEEDS}
        self.facts = sorted(self.seeds)

    def evidence(self) -> str | None:
        """Why the common range cannot carry a slope verdict (None when it can)."""
        octaves = math.log2(max(self.facts) / min(self.facts)) if self.facts else 0.0
        if len(self.facts) >= MIN_FACTS and octaves >= MIN_OCTAVES:
            return None
        return (f"{self.a.name} and {self.b.name} both stored at {len(self.facts)} value(s) of F in ≥ {MIN_SEEDS} "
                f"common seeds, spanning {octaves:.1f} octaves (a verdict needs ≥ {MIN_FACTS} values over "
                f"≥ {MIN_OCTAVES:g} octaves)")

    def lost(self) -> list[int]:
        """F where ``a`` stored in no seed while ``b`` stored in ≥ MIN_SEEDS: ``a`` cannot match there."""
        return [f for f in self.b.facts if f not in {r["num_facts"] for r in self.a.stored}
                and any(r["num_facts"] == f for r in self.a.rows)]

    def slope_difference(self) -> tuple[float, float, float, str]:
        return paired_difference("power", "s", self.a.sample(self.facts, self.seeds),
                                 self.b.sample(self.facts, self.seeds), n_boot=1000)

    def named(self) -> str:
        rows = [r for m in (self.a, self.b) for r in m.stored
                if r["num_facts"] in self.seeds and r.get("seed", 0) in self.seeds[r["num_facts"]]]
        return _cells_named(rows)


def _ratio(base: Method, other: Method, facts: int, column: str = "params") -> tuple[float, float, float, int]:
    """Geometric mean of other/base parameters over the seeds both stored at F, and its 95% t interval."""
    a, b = base.cost(facts, column), other.cost(facts, column)
    ratios = [b[s] / a[s] for s in sorted(set(a) & set(b))]
    low, high = interval(ratios, log=True)
    return (math.exp(np.mean(np.log(ratios))) if ratios else math.nan), low, high, len(ratios)


def _constants(label: str, base: Method, methods: list[Method]) -> list[str]:
    lines = []
    for m in methods:
        common = [f for f in m.facts if f in base.facts]
        if not common:
            continue
        ratios = {f: _ratio(base, m, f) for f in common}
        top = max(common)
        ratio, low, high, n = ratios[top]
        above = all(r[1] > 1 for r in ratios.values())
        below = all(r[2] < 1 for r in ratios.values())
        why = base.evidence() or m.evidence()
        verdict = ("inconclusive — " + why if why else "holds" if above else "does not hold" if below
                   else "inconclusive — the ratio's interval includes 1 at some F")
        distinct = _ratio(base, m, top, "params_distinct")
        other = (f"; counting distinct values (a shared gate once, 0/1 wiring as none) {fmt(distinct[0])}× "
                 f"[{fmt(distinct[1])}, {fmt(distinct[2])}]" if distinct[3] and abs(distinct[0] - ratio) > 1e-9 * ratio
                 else "")
        lines.append(f"- {label}: {REFERENCE} has a smaller constant than {m.name}: {verdict}. At F = {top} "
                     f"(largest F both stored in ≥ {MIN_SEEDS} seeds) {m.name} needs {fmt(ratio)}× "
                     f"[{fmt(low)}, {fmt(high)}] the parameters of {REFERENCE} counting every weight the forward "
                     f"pass uses (dense){other} ({n} paired seeds; measured at F = {', '.join(map(str, common))}; "
                     f"cells: {_cells_named(base.stored + m.stored)}).")
    return lines


def _verdict_of_difference(low: float, high: float) -> str:
    if -MARGIN <= low and high <= MARGIN:
        return "holds"
    if high < -MARGIN or low > MARGIN:
        return "does not hold"
    return f"inconclusive — the interval reaches past ±{MARGIN:g} but not wholly outside it"


def _asymptotics(label: str, base: Method, methods: list[Method]) -> list[str]:
    lines = []
    for m in methods:
        if m.name == PRIOR:
            continue
        head = f"- {label}: matching asymptotics, {m.name} vs {REFERENCE}:"
        common = Common(m, base)
        lost = common.lost()
        why = base.evidence() or m.evidence() or common.evidence()
        numbers = ""
        if not (base.evidence() or m.evidence()) and not common.evidence():
            diff, low, high, kind = common.slope_difference()
            numbers = (f"slope difference s({m.name}) − s({REFERENCE}) = {fmt(diff)} [{fmt(low)}, {fmt(high)}] on "
                       f"the F both stored (log2 F = s·log2 W + c; equivalence margin ±{MARGIN:g}; {kind} interval; "
                       f"cells: {common.named()})")
        if lost:
            where = ", ".join(map(str, lost))
            tail = f" On the common range, {numbers}." if numbers else ""
            lines.append(f"{head} does not hold at this d — {m.name} stores nothing at F = {where} ("
                         f"{_stores_nothing(m.lost()[lost[0]]).replace('stores nothing ', '')}), where {REFERENCE} stores: its cost leaves the searched range "
                         f"while {REFERENCE}'s does not.{tail}")
        elif not numbers:
            lines.append(f"{head} inconclusive — {why} (cells: {_cells_named(base.rows + m.rows)}).")
        else:
            lines.append(f"{head} {_verdict_of_difference(low, high)}. {numbers[0].upper()}{numbers[1:]}.")
    return lines


def _prior(label: str, base: Method, methods: dict[str, Method]) -> list[str]:
    prior = methods.get(PRIOR)
    if prior is None:
        return []
    lines = []
    for m in [base] + [x for x in methods.values() if x.name not in (REFERENCE, PRIOR)]:
        common = Common(prior, m)
        why = prior.evidence() or m.evidence() or common.evidence()
        head = f"- {label}: the prior construction scales worse than {m.name}:"
        if why:
            lines.append(f"{head} inconclusive — {why}.")
            continue
        diff, low, high, kind = common.slope_difference()
        verdict = "holds" if high < 0 else "does not hold" if low > 0 else "inconclusive — the interval includes 0"
        lines.append(f"{head} {verdict}. Slope difference s({PRIOR}) − s({m.name}) = {fmt(diff)} [{fmt(low)}, "
                     f"{fmt(high)}] on the F both stored ({kind} interval; cells: {common.named()}).")
    for facts, rows in prior.lost().items():
        kept = base.cost(facts)
        if kept:
            lines.append(f"- {label}: observed — {PRIOR} {_stores_nothing(rows, facts)} in "
                         f"{len(rows)} seed(s) ({seeds_of(rows)}; best accuracy {_best(rows)}), where {REFERENCE} "
                         f"stores with {_span(kept.values())} parameters.")
    return lines


def _not_stored(label: str, methods: list[Method]) -> list[str]:
    lines = []
    for m in methods:
        for facts, rows in m.lost().items():
            seeds = len([r for r in m.rows if r["num_facts"] == facts])
            lines.append(f"- {label}, F = {facts}: {m.name} {_stores_nothing(rows)} in {len(rows)} of "
                         f"{seeds} seed(s) (best accuracy {_best(rows)}, threshold {rows[0].get('threshold', 1.0)}).")
    return lines


def _monotone(label: str, methods: list[Method]) -> list[str]:
    lines = []
    for m in methods:
        flagged = [r for r in m.rows if r.get("monotone") is False]
        if flagged:
            where = ", ".join(f"F = {r['num_facts']} seed {r.get('seed', 0)}" for r in flagged)
            lines.append(f"- {label}: {m.name} stored at a width and failed at a wider one in {len(flagged)} of "
                         f"{len(m.rows)} cells ({where}); their minimum widths are marked † in the table.")
    return lines


def _group(fit: dict, params) -> str:
    """The setting a fit was made in: every parameter its row carries (method, d, spike_on, ...)."""
    return ", ".join(f"{k} = {fit[k]}" for k in fit if k in params and _value(fit, k) is not None)


def _rho(fits: list[dict], params) -> list[str]:
    lines = []
    for f in sorted((f for f in fits if f["law"] == "rho"), key=lambda f: _group(f, params)):
        group = _group(f, params)
        if f.get("problems"):
            lines.append(f"- ⚠ ρ law ({group}): degenerate fit ({f['problems']}); no exponent reported.")
            continue
        low, high = f["rho_exponent_low"], f["rho_exponent_high"]
        seeds = f.get("seeds", 1)
        if seeds < MIN_SEEDS:
            verdict = f"inconclusive — {seeds} seed(s) (a verdict needs ≥ {MIN_SEEDS})"
        elif low > 0:
            verdict = "holds (cost rises as ρ falls)"
        elif high < 0:
            verdict = "does not hold (cost falls as ρ falls)"
        else:
            verdict = "inconclusive — the exponent's interval includes 0"
        if 1.5 <= low and high <= 2.5:
            predicted = "agrees with p ≈ 2 (interval within 2 ± 0.5)"
        elif high < 1.5 or low > 2.5:
            predicted = "disagrees with p ≈ 2 (interval wholly outside 2 ± 0.5)"
        else:
            predicted = "cannot be told apart from p ≈ 2 or from a different exponent (interval straddles 2 ± 0.5)"
        lines.append(f"- ρ predicts the cost ({group}): {verdict}. log W = a + p·log(1/ρ), p = {fmt(f['rho_exponent'])} "
                     f"[{fmt(low)}, {fmt(high)}] ({_kind(f, 'rho_exponent')} interval), R² = {fmt(f['r2'])}, {f['n']} cells, "
                     f"{seeds} seeds; the encoder–decoder analysis (c = O(log F/ρ²)) predicts p ≈ 2: this {predicted}.")
    return lines


def _slopes(fits: list[dict], params) -> list[str]:
    lines = []
    for f in sorted((f for f in fits if f["law"] in ("power", "size")), key=lambda f: (f["law"], _group(f, params))):
        group = _group(f, params)
        if f.get("problems"):
            lines.append(f"- ⚠ {f['law']} law ({group}): degenerate fit ({f['problems']}); not reported.")
        elif (f.get("x_values") or MIN_FACTS) < MIN_FACTS:
            estimate = (f"s = {fmt(f['power_slope'])}" if f["law"] == "power" else f"C = {fmt(f['size_constant'])}, b = {fmt(f['size_offset'])}")
            lines.append(f"- {group}: {f['law']} law, {estimate} as a point estimate only: {f['x_values']} values of "
                         f"F are too few for an interval that means anything (≥ {MIN_FACTS} over ≥ {MIN_OCTAVES:g} "
                         "octaves).")
        elif f["law"] == "power":
            lines.append(f"- {group}: s = {fmt(f['power_slope'])} [{fmt(f['power_slope_low'])}, {fmt(f['power_slope_high'])}] "
                         f"(log2 F = s·log2 W + c, {_kind(f, 'power_slope')} interval, R² = {fmt(f['r2'])}, {f['n']} cells, "
                         f"{f.get('seeds', 1)} seeds).")
        else:
            lines.append(f"- {group}: W = C·F·(log2 F + b), C = {fmt(f['size_constant'])} [{fmt(f['size_constant_low'])}, "
                         f"{fmt(f['size_constant_high'])}], b = {fmt(f['size_offset'])} [{fmt(f['size_offset_low'])}, {fmt(f['size_offset_high'])}] "
                         f"({_kind(f, 'size_constant')} interval, R² = {fmt(f['r2'])}, {f['n']} cells; W counted dense).")
    return lines


def _kind(fit: dict, name: str) -> str:
    kind = fit.get(f"{name}_interval")
    return kind if isinstance(kind, str) and kind else BOOTSTRAP


def _step(row: dict) -> float | None:
    """The parameters one step of the width search adds at this cell (one hidden unit; None unknown)."""
    return row["params"] / row["min_width"] if _value(row, "min_width") else None


def _below_resolution(base: list[dict], other: list[dict]) -> str | None:
    """Why two sides' costs cannot be told apart, when every seed's difference is at most one width
    step (None when some seed's difference is larger, or no seed pairs up)."""
    a, b = ({r.get("seed", 0): r for r in side} for side in (base, other))
    seeds = sorted(set(a) & set(b))
    steps = [max(_step(a[s]) or math.nan, _step(b[s]) or math.nan) for s in seeds]
    gaps = [abs(b[s]["params"] - a[s]["params"]) for s in seeds]
    if not seeds or not all(gap == 0 or gap <= step for gap, step in zip(gaps, steps)):
        return None  # a NaN step (a cell without its width) never compares as ≤
    if not all(math.isfinite(step) for step in steps):
        return (f"the same parameters in each of {len(seeds)} paired seed(s) "
                f"({_span([a[s]['params'] for s in seeds])}), and a search cannot see less than one step")
    share = max(step / min(a[s]["params"], b[s]["params"]) for s, step in zip(seeds, steps))
    return (f"in each of {len(seeds)} paired seed(s) the costs differ by at most one step of the width search "
            f"(one unit = {_span(steps)} parameters, up to {share:.0%} of the cost; params "
            f"{_span([a[s]['params'] for s in seeds])} against {_span([b[s]['params'] for s in seeds])})")


def _median_rho(rows: list[dict]) -> str:
    return fmt(float(np.median([r["rho"] for r in rows if _value(r, "rho") is not None] or [math.nan])))


def _log_costs(rows: list[dict]) -> list[dict]:
    """The stored cells with their log parameter count, for ratios paired by seed."""
    return [{**r, "log_params": math.log(r["params"])} for r in rows if _stored(r)]


class Contrast:
    """Two values of one parameter compared on the same seeds: ``other`` against ``base``."""

    def __init__(self, key: str, base, other, names: tuple[str, str], claim: str, raises: bool, intro: str):
        self.key, self.base, self.other, self.names = key, base, other, names
        self.claim, self.raises, self.intro = claim, raises, intro


CONTRASTS = (
    Contrast("spike_axis", "random", "row", ("random axis", "row axis"), "The row axis costs more", True,
             "The revised paper's public code draws the spike's axis from a generator seeded like the embeddings, so "
             "the axis is the first key's direction: its anisotropic figure corresponds to `spike_axis = row`; "
             "`random` is an axis independent of every key."),
    Contrast("whiten", False, True, ("plain", "whitened"), "Whitening the values lowers the cost", False,
             "`whiten = True` whitens the values (the same fact sets otherwise): ρ is that of the whitened values."),
    Contrast("geometry", "spherical", "llm_mlp_io", ("spherical", "LLM MLP I/O"), "The real embeddings cost more", True,
             "A real model's MLP inputs and outputs against spherical keys and values of the same d (different "
             "fact sets: seeds are matched, not the facts)."),
)


def _title(contrast: Contrast) -> str:
    other, base = contrast.names[1], contrast.names[0]
    return f"{other[:1].upper()}{other[1:]} against {base}"


def _contrast(cells: list[dict], params, contrast: Contrast) -> list[str]:
    """Per method, d and F (and any other parameter that varies): the ρ each value gives and the cost
    ratio other/base, paired by seed, with its verdict."""
    key = contrast.key
    if not {contrast.base, contrast.other} <= {_value(c, key) for c in cells}:
        return []
    keys = ["method", "d", "num_facts"] + [k for k in params if k not in ("method", "d", "num_facts", "seed", key)
                                           and len({repr(_value(c, k)) for c in cells}) > 1]
    groups = defaultdict(list)
    for c in cells:  # a method's own options are absent (None, NaN in a table) from other methods' cells
        groups[tuple((k, _value(c, k)) for k in keys)].append(c)

    def order(values):
        return [(k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))) for k, v in values]
    base_name, other_name = contrast.names
    lines = [f"- {contrast.intro}"]
    for values, rows in sorted(groups.items(), key=lambda kv: order(kv[0])):
        name = ", ".join(str(v) if k == "method" else f"{SYMBOLS.get(k, k)} = {v}" for k, v in values
                         if v is not None and (k == "method" or k in ("d", "num_facts") or len(
                             {_value(c, k) for c in cells if c.get("method") == values[0][1]}) > 1))
        sides = [[r for r in rows if _value(r, key) == v] for v in (contrast.base, contrast.other)]
        rho = [_median_rho(side) for side in sides]
        logs = [_log_costs(side) for side in sides]
        lost = [len(side) - len(log) for side, log in zip(sides, logs)]
        head = f"- {name}: median ρ {rho[0]} ({base_name}) vs {rho[1]} ({other_name})"
        if any(lost):
            lines.append(f"{head}; stored nothing in {lost[0]} of {len(sides[0])} seed(s) {base_name}, {lost[1]} of "
                         f"{len(sides[1])} {other_name}.")
            continue
        diffs = paired(logs[1], logs[0], "log_params")
        below = _below_resolution(logs[0], logs[1])
        if below:
            lines.append(f"{head}; below resolution: {below}. {contrast.claim}: inconclusive.")
            continue
        mean, low, high, n = summary(diffs)
        up, down = ("holds", "does not hold") if contrast.raises else ("does not hold", "holds")
        verdict = (f"inconclusive — {n} paired seed(s) (a verdict needs ≥ {MIN_SEEDS})" if n < MIN_SEEDS else
                   up if low > 0 else down if high < 0 else "inconclusive — the interval contains 1×")
        lines.append(f"{head}; {other_name} needs {fmt(math.exp(mean))}× [{fmt(math.exp(low))}, "
                     f"{fmt(math.exp(high))}] the parameters of {base_name} ({n} paired seeds; params "
                     f"{_span([r['params'] for r in logs[0]])} {base_name}, {_span([r['params'] for r in logs[1]])} "
                     f"{other_name}). {contrast.claim}: {verdict}.")
    return lines


def _spike_targets(cells: list[dict]) -> list[str]:
    """Where the spike goes on keys, values or both: per method and target, ρ and the cost at the
    weakest and the strongest spike, the cost ratio paired by seed. A keys-only spike leaves the
    values' ρ where it was (the control): a cost that moves there is the keys' doing, not ρ's."""
    targets = {_value(c, "spike_on") for c in cells} - {None}
    betas = sorted({_value(c, "beta") for c in cells} - {None})
    if len(targets) < 2 or len(betas) < 2:
        return []
    lines = ["- A spike on the keys only leaves the values' ρ unchanged: it is the control for the ρ law, and a "
             "cost that moves there moves for another reason than ρ (the keys' own anisotropy)."]
    groups = defaultdict(list)
    for c in cells:
        groups[(c["method"], _value(c, "spike_on"), c.get("d"), c.get("num_facts"))].append(c)
    for (method, target, d, facts), rows in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        ends = [[r for r in rows if _value(r, "beta") == b] for b in (betas[0], betas[-1])]
        rho = [_median_rho(end) for end in ends]
        logs = [_log_costs(end) for end in ends]
        diffs = paired(logs[1], logs[0], "log_params")
        mean, low, high, n = summary(diffs)
        below = _below_resolution(logs[0], logs[1])
        cost = (f"cost change below resolution: {below}" if below else
                f"cost ×{fmt(math.exp(mean))} [{fmt(math.exp(low))}, {fmt(math.exp(high))}] over {n} paired seeds "
                f"({_span([r['params'] for r in logs[0]])} → {_span([r['params'] for r in logs[1]])} parameters)"
                if n else "no seed stored at both ends")
        lines.append(f"- {method}, spike on {target}, d = {d}, F = {facts}: β {betas[0]:g} → {betas[-1]:g}: median ρ "
                     f"{rho[0]} → {rho[1]}; {cost}.")
    return lines


COLLAPSE = 0.1  # κ cells within ±10% of the spike cells' ρ curve count as "on one curve"


def _one_curve(cells: list[dict]) -> list[str]:
    """Does ρ alone set the cost? Per method, d and F: the ρ law fitted to the spike cells predicts the
    cost of the condition-number (κ) cells at their own ρ; the κ cells' cost over that prediction,
    averaged per seed, with a t interval over seeds, is judged against ±10%."""
    groups = defaultdict(list)
    for c in cells:
        if _stored(c) and _value(c, "rho") is not None and c.get("geometry") in ("spike", "condition"):
            groups[(c["method"], c.get("d"), c.get("num_facts"))].append(c)
    lines = []
    for (method, d, facts), rows in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        spike = [r for r in rows if r["geometry"] == "spike"]
        kappa = [r for r in rows if r["geometry"] == "condition"]
        if len({_value(r, "beta") for r in spike}) < 3 or not kappa:
            continue
        head = f"- {method}, d = {d}, F = {facts}: κ cells (ρ {_span([r['rho'] for r in kappa])}) against the spike's ρ curve"
        rhos = [r["rho"] for r in spike]
        if not all(min(rhos) <= r["rho"] <= max(rhos) for r in kappa):
            lines.append(f"{head}: not compared — some κ cells' ρ lies outside the spike cells' range "
                         f"({_span(rhos)}), and the curve is not extrapolated.")
            continue
        law = fit("rho", rhos, [r["params"] for r in spike], n_boot=1)
        by_seed = defaultdict(list)
        for r in kappa:
            by_seed[r.get("seed", 0)].append(math.log(r["params"] / float(law.predict([r["rho"]])[0])))
        mean, low, high, n = summary([float(np.mean(v)) for v in by_seed.values()])
        inside = math.log(1 - COLLAPSE) <= low and high <= math.log(1 + COLLAPSE)
        outside = high < math.log(1 - COLLAPSE) or low > math.log(1 + COLLAPSE)
        verdict = (f"inconclusive — {n} seed(s) (a verdict needs ≥ {MIN_SEEDS})" if n < MIN_SEEDS else
                   "on one curve (holds)" if inside else "off the curve (does not hold)" if outside else
                   f"inconclusive — the interval reaches past ±{COLLAPSE:.0%} but not wholly outside it")
        lines.append(f"{head}: {verdict}. Cost over the curve's prediction ×{fmt(math.exp(mean))} "
                     f"[{fmt(math.exp(low))}, {fmt(math.exp(high))}] ({n} seeds; spike fit p = {fmt(law.estimates['p'])} "
                     f"over ρ {_span(rhos)}, {len(spike)} cells).")
    return lines


def capacity_findings(cells: list[dict], fits: list[dict], *, params) -> str:
    """The findings text; ``params`` are the experiment's parameter names (the rest of a row is results)."""
    settings = _settings(cells, params)
    sections = defaultdict(list)
    for setting in sorted(settings):
        rows = settings[setting]
        label = _label(rows[0], setting)
        methods = {}
        for name in sorted({r["method"] for r in rows}):
            methods[name] = Method(name, [r for r in rows if r["method"] == name])
        others = [m for n, m in methods.items() if n != REFERENCE]
        base = methods.get(REFERENCE)
        if base is not None and len({r["num_facts"] for r in rows}) > 1:
            sections["Constants (measured F only)"] += _constants(label, base, others)
            sections["Asymptotics"] += _asymptotics(label, base, others)
            sections["The prior construction"] += _prior(label, base, methods)
        sections["Cells that stored nothing"] += _not_stored(label, list(methods.values()))
        sections["Non-monotone searches"] += _monotone(label, list(methods.values()))
    for contrast in CONTRASTS:
        sections[_title(contrast)] = _contrast(cells, params, contrast)
    sections["Spike on keys, values or both"] = _spike_targets(cells)
    sections["Fitted slopes"] = _slopes(fits, params)
    sections["Decodability ρ and cost"] = _rho(fits, params)
    sections["One curve of ρ: spike and condition number"] = _one_curve(cells)
    order = ("Asymptotics", "Constants (measured F only)",
             *(_title(c) for c in CONTRASTS), "The prior construction", "Spike on keys, values or both", "Decodability ρ and cost",
             "One curve of ρ: spike and condition number", "Fitted slopes", "Cells that stored nothing", "Non-monotone searches")
    rules = [f"Every verdict needs ≥ {MIN_SEEDS} seeds and an interval wholly on one side of its bar; otherwise it "
             "says inconclusive and why."]
    if sections.get("Asymptotics") or sections.get("The prior construction"):
        rules.append(f"Slopes are compared on the F both methods stored, which must be ≥ {MIN_FACTS} values over "
                     f"≥ {MIN_OCTAVES:g} octaves.")
    if sections.get("Decodability ρ and cost"):
        rules.append("A ρ law needs ρ to move by ≥ 10% across its cells; its exponent is judged against 0 (does cost "
                     "follow ρ?) and against the analysis' p ≈ 2 ± 0.5.")
    body = "\n\n".join(f"### {t}\n\n" + "\n".join(sections[t]) for t in order if sections.get(t))
    return "\n\n".join([" ".join(rules)] + ([body] if body else []))


def _span(values) -> str:
    """``low–high``, or one number when every seed gave the same."""
    low, high = min(values), max(values)
    return _count(low) if low == high else f"{_count(low)}–{_count(high)}"


def _count(value: float) -> str:
    """A parameter count as the integer it is (4608, not 4.61e+03)."""
    return f"{int(value)}" if float(value).is_integer() else fmt(value)


def _stores_nothing(rows: list[dict], facts: int | None = None) -> str:
    """What a reader must be told about cells that stored nothing: a model-class ceiling when every
    one of their searches stopped at a plateau (accuracy flat as width grew), else the range searched."""
    at = "" if facts is None else f" at F = {facts}"
    if rows and all(r.get("accuracy_plateau") is True for r in rows):
        return (f"reaches a model-class ceiling{at} (accuracy flat as width grew, searches stopped by width "
                f"{max(int(r['max_width_tried']) for r in rows)})")
    return f"stores nothing{at} up to width {_top(rows)}"


def _top(rows: list[dict]) -> int:
    """The widest width the searches of these cells could try."""
    return max(r.get("search_high", 0) for r in rows)


def _best(rows: list[dict]) -> str:
    return fmt(max(r.get("best_accuracy", math.nan) for r in rows))
