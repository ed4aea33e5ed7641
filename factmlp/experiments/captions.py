"""Caption lines of each experiment kind's figures: the recipe and threshold a reader needs to read
a figure alone (the figure adds the seeds and the settings it holds fixed). A part whose values the
rows do not carry is left out, never printed blank."""
from __future__ import annotations


def distinct(rows: list[dict], key: str) -> str:
    """'0.99' or '0.99, 1': every value of ``key`` among the rows drawn ('' when none is set)."""
    values = sorted({row[key] for row in rows if row.get(key) is not None and row.get(key) == row.get(key)},
                    key=lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _parts(rows: list[dict], *parts: tuple[str, tuple[str, ...]]) -> str:
    """Each (template, keys) with its keys' values filled in, when the rows carry all of them."""
    out = []
    for template, keys in parts:
        values = [distinct(rows, k) for k in keys]
        if all(values):
            out.append(template.format(*values))
    return "; ".join(out)


def capacity(rows: list[dict]) -> str:
    """Stored = accuracy at or above the threshold; GD's recipe when GD is drawn; the width range searched."""
    gd = [row for row in rows if row.get("method") == "gd"]
    return "; ".join(p for p in (
        _parts(rows, ("stored: accuracy ≥ {}", ("threshold",))),
        _parts(gd, ("GD: {} epochs, Adam lr {} (cosine)", ("gd_epochs", "gd_lr"))),
        _parts(rows, ("widths searched {}–{}", ("search_low", "search_high")))) if p)


def transformer(rows: list[dict]) -> str:
    """The schedule, the attention's training budget and (for capacity) the recall that counts as stored."""
    return _parts(rows, ("schedule {}", ("schedule",)), ("attention: ≤ {} AdamW steps", ("attn_steps",)),
                  ("stored: recall ≥ {}", ("threshold",)), ("F = {}", ("num_facts",)))


def editing(rows: list[dict]) -> str:
    """How many facts and edit draws, and whether the baselines were tuned on the other half."""
    tuned = {row.get("tune") for row in rows} - {None}
    words = ("scores on the evaluation half; baselines tuned on the other half" if tuned == {True}
             else "baselines at their default settings" if tuned == {False} else "")
    return "; ".join(p for p in (_parts(rows, ("F = {} facts", ("num_facts",)),
                                        ("{} edit draw(s) per cell", ("draws",))), words) if p)


def fixed_grid(rows: list[dict]) -> str:
    """Every point evaluated (no search); for the Transformer probe, its schedule and attention budget."""
    inside = [row for row in rows if row.get("probe") == "transformer"]
    return "; ".join(p for p in ("every grid point evaluated (no search)",
                                 _parts(rows, ("d = {}", ("d",))),
                                 _parts(inside, ("schedule {}", ("schedule",))),
                                 _parts(inside, ("attention: ≤ {} AdamW steps", ("attn_steps",)))) if p)
