"""Experiment kinds by name: the only way a sweep YAML selects code to run."""
from factmlp.experiments import capacity, synthetic
from factmlp.experiments import editing as _editing
from factmlp.experiments import transformer as _transformer
from factmlp.experiments.base import Experiment, Param

REGISTRY: dict[str, Experiment] = {e.name: e for e in (capacity.EXPERIMENT, synthetic.EXPERIMENT,
                                                  _transformer.USABILITY, _transformer.CAPACITY,
                                                  _editing.EXPERIMENT)}

__all__ = ["REGISTRY", "Experiment", "Param"]
