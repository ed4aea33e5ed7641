"""Where torch work runs, from a config string: a construction and the trainer both read it here."""
from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """A torch device from 'cpu', 'cuda', 'cuda:1', ...; 'auto' is a GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
