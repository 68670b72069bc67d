"""The exception family vgtrain raises for a user's mistake (bad manifest, checkpoint, option).

The CLI turns a :class:`VgtrainError` into a one-line message and exit code 1; any other
exception is a bug and keeps its traceback. None of these is a ``ValueError``: a ``ValueError``
that reaches the CLI is a bug, not a user's fault.
"""

from __future__ import annotations

import re

_WORKER_WRAPPED = re.compile(r"\ACaught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


class VgtrainError(Exception):
    """A user-facing error of vgtrain: bad input file, option or state, with what to do."""

    exit_code: int = 1

    def __init__(self, *args: object) -> None:
        # A torch DataLoader re-raises a worker's exception as ``type(e)("Caught ... Original Traceback ...")``;
        # keep the worker's own one-line message (the last line, after "module.Class: ").
        if len(args) == 1 and isinstance(args[0], str) and _WORKER_WRAPPED.match(args[0]):
            last = args[0].rstrip().splitlines()[-1]
            args = (last.split(": ", 1)[1] if ": " in last else last,)
        super().__init__(*args)


class CheckpointError(VgtrainError):
    """A checkpoint, training-state, weights or meta file that cannot be used: missing, truncated, corrupt,
    not a plain tensor file (anything that would need code to run when loaded), or not of this run."""
