"""The experiment kinds of factsweep, one module each, registered by name in pyproject.toml's
``factsweep.experiments`` entry points (see ``orchestrator.registry``)."""
