"""The errors users see: one line each, bad input (exit 2) or an environment that stops a command (exit 1)."""


class SpecError(Exception):
    """Bad sweep file, override or CLI argument; the CLI prints it on one line and exits with 2."""

    def __init__(self, source: str, key: str, message: str):
        super().__init__(f"{source}: {key}: {message}")
        self.source, self.key = source, key


class Unavailable(Exception):
    """The environment, not the input, stops a command (the sweep is locked by another run, the cluster
    cannot be reached); the CLI prints it on one line and exits with 1."""
