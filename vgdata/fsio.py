"""The one way vgdata writes a file: to a temporary name in the same folder, then a rename.

A reader (another process, a resumed job, a crash survivor) sees the old file or the new one,
never a part. Every writer in vgdata goes through :func:`atomic_path`, directly or through the
two shorthands below. Temporary names start with ``.tmp-`` so that scans of image folders and
manifest globs skip them, and end in the process id and a random token, so two processes
writing one file never share a temporary name. The temporary file is not created in advance:
the writer creates it, so it gets the usual permissions (``0o666`` less the umask), like a file
written in place.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit rename it over ``path``.

    The caller writes the temporary path by any means (Pillow, DuckDB ``COPY``, torch.save).
    On an exception the temporary file is removed and ``path`` is untouched. ``fsync`` flushes
    the file to the disk before the rename (a power cut then keeps a whole file).
    The parent folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_table(path: Path, table: pa.Table, metadata: dict[str, str] | None = None) -> None:
    """Write a zstd Parquet file atomically; ``metadata`` goes into the key-value metadata."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
