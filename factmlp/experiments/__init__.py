"""Experiment kinds by name: the only way a sweep YAML selects code to run."""
from factmlp.experiments import capacity, synthetic
from factmlp.experiments.base import Experiment, Param

REGISTRY: dict[str, Experiment] = {e.name: e for e in (capacity.EXPERIMENT, synthetic.EXPERIMENT)}

__all__ = ["REGISTRY", "Experiment", "Param"]
