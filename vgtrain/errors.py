"""The exception family vgtrain raises for a user's mistake (bad manifest, checkpoint, option).

The CLI turns a :class:`VgtrainError` into a one-line message and exit code 1; any other
exception is a bug and keeps its traceback.
"""


class VgtrainError(Exception):
    """A user-facing error of vgtrain: bad input file, option or state, with what to do."""

    exit_code: int = 1
