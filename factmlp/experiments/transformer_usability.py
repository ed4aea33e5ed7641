"""transformer_usability: a fact MLP of fixed width inside the constrained Transformer
(docs/science.md#inside-a-transformer, docs/transformer.md).

A cell is (method, whitening, d, F, width, ...); its probes are the two schedules
(insert-then-train-attention, pretrain-attention-then-swap-in an MLP for a fresh permutation). Each
probe records recall inside the Transformer and the usability metrics of the MLP (γ, Lipschitz,
recall under query noise, the attention noise floor).
"""
from __future__ import annotations

from factmlp.experiments.sweep_params import Param
from orchestrator.experiment import Experiment, FigureSpec
from factmlp.experiments.transformer_schedules import COMMON, EPS, LABELS, SCHEDULES, check, method_of, run_schedule

SHORT = {"insert_then_train": "insert", "pretrain_then_swap": "swap"}

PARAMS = {
    **COMMON,
    "num_facts": Param(int, low=2, high=1 << 22, doc="F"),
    "schedule": Param(str, "both", choices=("both",) + SCHEDULES, doc="which schedules the cell runs"),
}


def _schedules(cell: dict) -> tuple[str, ...]:
    return SCHEDULES if cell["schedule"] == "both" else (cell["schedule"],)


def usability_next(cell: dict, results: list[dict]) -> list[dict]:
    done = {r["schedule"] for r in results}
    return [{"schedule": s} for s in _schedules(cell) if s not in done]


def usability_run(cell: dict, probes: list[dict]) -> list[dict]:
    return [run_schedule(cell, p["schedule"], cell["num_facts"]) for p in probes]


MLP_COLUMNS = ("params", "mlp_accuracy", "margin_min", "lipschitz_bound", "jacobian_norm_max", "jacobian_rel_max",
               "noise_radius", "recall_exact_key") + tuple(f"recall_eps_{e:g}".replace(".", "p") for e in EPS)


def usability_summary(cell: dict, results: list[dict]) -> dict:
    """Recall, perfect-attention recall, the MLP's standalone accuracy and the attention noise per
    schedule (the swap MLP is another MLP, built for f′); the MLP's other metrics from the insert
    schedule's MLP."""
    by = {r["schedule"]: r for r in results}
    out = {}
    for schedule in SCHEDULES:
        r = by.get(schedule, {})
        for key in ("recall", "recall_exact_key", "mlp_accuracy", "attn_error_mean", "attn_error_max",
                    "attn_steps_run"):
            out[f"{SHORT[schedule]}_{key}"] = r.get(key)
    first = by.get("insert_then_train") or by.get("pretrain_then_swap") or {}
    out.update({k: first.get(k) for k in MLP_COLUMNS})
    out["noise_scale"] = first.get("noise_scale")
    out["usable"] = all(by[s]["recall"] >= cell["stop_recall"] for s in by) if by else None
    return out


def usability_findings(cells: list[dict], fits: list[dict]) -> str:
    """Whitened against plain, per method and width: capacity-side and usability-side numbers."""
    lines = []
    key = lambda c: (c["method"], c["d"], c["num_facts"], c["width"])
    pairs = {}
    for c in cells:
        pairs.setdefault(key(c), {})[bool(c["whiten"])] = c
    for k, pair in sorted(pairs.items()):
        for whiten, c in sorted(pair.items()):
            name = f"{c['method']}{' (whitened)' if whiten else ''} d={c['d']} F={c['num_facts']} m={c['width']}"
            fmt = lambda v: "n/a" if v is None or v != v else f"{v:.4g}"
            lines.append(f"- {name}: standalone accuracy {fmt(c.get('mlp_accuracy'))}, γ_min "
                         f"{fmt(c.get('margin_min'))}, max ‖J‖·‖k‖/‖g‖ {fmt(c.get('jacobian_rel_max'))}, "
                         "recall "
                         f"(insert) {fmt(c.get('insert_recall'))}, (swap) {fmt(c.get('swap_recall'))}, "
                         f"attention error {fmt(c.get('insert_attn_error_mean'))}")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="transformer_usability",
    params=PARAMS,
    next_probes=usability_next,
    run_probes=usability_run,
    summarize=usability_summary,
    check=check,
    method_of=method_of,
    summary_columns=("method", "whiten", "d", "num_facts", "width", "params", "mlp_accuracy", "margin_min",
                     "jacobian_rel_max", "recall_eps_0p1", "insert_recall", "swap_recall", "insert_attn_error_mean"),
    trajectory=("attn_steps_run", "recall"),
    figures=(
        FigureSpec("recall_vs_params", "params", "swap_recall", "method", "whiten", log_y=False,
                   title="recall after swap-in vs MLP parameters"),
        FigureSpec("recall_vs_lipschitz", "jacobian_rel_max", "recall_eps_0p1", "method", "whiten", log_y=False,
                   title="recall under query noise 0.1 vs relative Jacobian norm"),
    ),
    findings=usability_findings,
    labels=LABELS,
)
