"""Experiment kinds by name: the only way a sweep YAML selects code to run."""
from factmlp.experiments import capacity, editing, synthetic, transformer_capacity, transformer_usability
from factmlp.experiments.base import Experiment, Param

REGISTRY: dict[str, Experiment] = {e.EXPERIMENT.name: e.EXPERIMENT for e in (
    capacity, synthetic, transformer_usability, transformer_capacity, editing)}

__all__ = ["REGISTRY", "Experiment", "Param"]
