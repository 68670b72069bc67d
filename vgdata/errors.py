"""The one exception type library code raises for a user's mistake.

The CLI turns it into a one-line message and a non-zero exit; it never shows a
traceback for it.
"""


class VgdataError(Exception):
    """A user-facing error: bad input, missing file, inconsistent parameters."""

    exit_code: int = 1


class UsageError(VgdataError):
    """Bad invocation: missing folder or CSV, missing columns (exit code 2)."""

    exit_code = 2


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` replacement: ``warning: <message>`` on one line, without Python's file
    and source line (installed by the CLI, and in vgdata's worker processes)."""
    import sys

    out = file or sys.stderr
    out.write(f"warning: {message}\n")  # one write: lines of several worker processes never interleave
    out.flush()
