"""Caption lines of each experiment kind's figures: the recipe and threshold a reader needs to read
a figure alone (the figure adds the seeds and the settings it holds fixed)."""
from __future__ import annotations


def distinct(rows: list[dict], key: str) -> str:
    """'0.99' or '0.99, 1' : every value of ``key`` among the rows drawn (unset ones left out)."""
    values = sorted({row[key] for row in rows if row.get(key) is not None and row.get(key) == row.get(key)}, key=str)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def capacity(rows: list[dict]) -> str:
    """Stored = accuracy at or above the threshold; GD's recipe when GD is drawn; the width range searched."""
    parts = [f"stored: accuracy ≥ {distinct(rows, 'threshold')}"]
    if any(row.get("method") == "gd" for row in rows):
        parts.append(f"GD: {distinct(rows, 'gd_epochs')} epochs, Adam lr {distinct(rows, 'gd_lr')} (cosine)")
    if any(row.get("search_high") is not None for row in rows):
        parts.append(f"widths searched {distinct(rows, 'search_low')}–{distinct(rows, 'search_high')}")
    return "; ".join(parts)


def transformer(rows: list[dict]) -> str:
    """The schedule, the attention's training budget and (for capacity) the recall that counts as stored."""
    parts = [f"schedule {distinct(rows, 'schedule')}", f"attention: ≤ {distinct(rows, 'attn_steps')} AdamW steps"]
    if any(row.get("threshold") is not None for row in rows):
        parts.append(f"stored: recall ≥ {distinct(rows, 'threshold')}")
    if any(row.get("num_facts") is not None for row in rows):
        parts.append(f"F = {distinct(rows, 'num_facts')}")
    return "; ".join(parts)


def editing(rows: list[dict]) -> str:
    """How many facts, edit draws and whether the baselines were tuned on the held-out half."""
    tuned = {row.get("tune") for row in rows}
    return "; ".join([f"F = {distinct(rows, 'num_facts')} facts", f"{distinct(rows, 'draws')} edit draw(s) per cell",
                      "scores on the evaluation half; baselines tuned on the other half" if tuned == {True}
                      else "baselines at their default settings" if tuned == {False} else "baselines tuned in some cells"])
