"""Explicit weight constructions, registered by name so a sweep selects them as ``method``.

Each entry maps (fact set, hidden width, seed, options) to a ``GatedMLP`` that the common
evaluation code scores.
"""
from factmlp.constructions.hebbian import hebbian, hebbian_whitened

CONSTRUCTIONS = {
    "hebbian": hebbian,
    "hebbian_whitened": hebbian_whitened,
}


def build(method: str, factset, width: int, *, seed: int = 0, **options):
    """Build the named construction; unknown names fail with the list of allowed ones."""
    if method not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction {method!r}; allowed: {', '.join(sorted(CONSTRUCTIONS))}")
    return CONSTRUCTIONS[method](factset, width, seed=seed, **options)
