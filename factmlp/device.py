"""Where torch work runs, from a config string: a construction and the trainer both read it here."""
from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """A torch device from 'cpu', 'cuda', 'cuda:1', ...; 'auto' is a GPU when torch sees one, else the CPU.

    'auto' is where sweeps run, so a task whose assigned GPU does not exist (a Ray task's
    CUDA_VISIBLE_DEVICES naming a logical GPU on a CPU machine) falls back to the CPU. Setting
    FACTMLP_DEVICE (e.g. ``cpu``) makes 'auto' that device instead: a GPU machine's probes on its CPU.
    An explicit CUDA device that torch cannot see is an error here, not deep inside the first copy.
    """
    if name == "auto":
        name = os.environ.get("FACTMLP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s) "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                           "use device 'auto' to fall back to the CPU")
    return device
