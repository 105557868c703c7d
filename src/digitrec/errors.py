"""The project's one exception type: a message a user can act on, shown on one line."""


class DigitrecError(Exception):
    """Bad input or a failed step, described in one line for the user (the CLI exits with code 2)."""


def one_line(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`, for a one-line DigitrecError (torch's are many lines)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
