"""The project's one exception type: a message a user can act on, shown on one line."""


class DigitrecError(Exception):
    """Bad input or a failed step, described in one line for the user (the CLI exits with code 2)."""
