"""The one error users see for bad input: a single line naming the file, the key and what is allowed."""


class SpecError(Exception):
    """Bad sweep file, override or CLI argument; the CLI prints it on one line and exits with 2."""

    def __init__(self, source: str, key: str, message: str):
        super().__init__(f"{source}: {key}: {message}")
        self.source, self.key = source, key
