"""The one way vgtrain writes a file: to a temporary name in the same folder, then a rename.

A reader (``vgtrain eval`` on a run still training, a resumed run, a crash survivor) sees the old
file or the new one, never a part. Every writer in vgtrain (checkpoints, meta.json,
predictions.parquet, recalls.json, report.html) goes through :func:`atomic_path`. Temporary names
start with ``.tmp-`` and end in the process id and a random token, so two processes writing the
same file never share one. vgtrain keeps its own copy of this helper: it never imports vgdata.

The temporary file is not created in advance: the writer creates it, so it gets the usual
permissions (``0o666`` less the umask), like a file written in place.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"
"""How every temporary name starts (scans and tests skip or look for it)."""


def temporary_name(path: Path) -> Path:
    """A fresh name beside ``path``: ``.tmp-<name>.<pid>.<8 hex digits>``."""
    return path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit rename it over ``path``.

    The caller writes the temporary path by any means (``torch.save``, ``pq.write_table``,
    ``Path.write_text``). On an exception the temporary file is removed, ``path`` is untouched
    and the exception propagates. ``fsync`` flushes the file to the disk before the rename (a
    power cut then keeps a whole file). The parent folder is created when missing. A clean exit
    without a file at the temporary path is a :class:`FileNotFoundError` (the writer wrote nothing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
