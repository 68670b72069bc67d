"""The one manifest writer: a query over a manifest macro, copied by DuckDB to Parquet.

Every manifest (groups, eval sets) is one table macro of ``vgdata/sql/manifests/``; the module
that owns it (:mod:`vgdata.groups`, :mod:`vgdata.evalset`) passes a query over that macro (or
over a temp table materialised from it) to :func:`write_manifest`, which writes
``<catalog>/manifests/<name>.parquet`` with DuckDB ``COPY``: zstd, row groups of 100,000 rows,
and :meth:`vgdata.catalog.Catalog.manifest_metadata` as the Parquet key-value metadata (format
version, kind, parameters, catalog fingerprint, image roots relative to the catalog). The file
appears atomically (:func:`vgdata.fsio.atomic_path`) under the catalog's writer lock.
vgtrain reads it with pyarrow only (``vgtrain/manifest.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vgdata.catalog import Catalog, _sql_literal, writer_lock
from vgdata.fsio import atomic_path

ROW_GROUP_SIZE = 100_000


def write_manifest(
    con: Any,
    cat: Catalog,
    build: dict[str, Any],
    name: str,
    query: str,
    *,
    kind: str,
    params: dict[str, Any],
    query_params: dict[str, Any] | None = None,
) -> Path:
    """``COPY (query) TO <catalog>/manifests/<name>.parquet`` with the manifest metadata; returns the path.

    ``con``: a DuckDB connection to the catalog (read-only is fine) on which ``query`` runs;
    ``query_params``: its named parameters (``$name``), bound by DuckDB, never pasted into the text.
    ``build``: the build.json the manifest was computed from (its fingerprint goes into the metadata).
    ``name`` must be a file stem the caller checked (letters, digits, ``_ . -``). The row order is the
    query's (give it an ``order by``).
    """
    meta = cat.manifest_metadata(build, kind=kind, params=params)
    kv = ", ".join(f"'{_sql_literal(k)}': '{_sql_literal(v)}'" for k, v in meta.items())
    path = cat.manifests_dir / f"{name}.parquet"
    with writer_lock(cat.root, task=f"write manifest {name!r}"), atomic_path(path) as tmp:  # re-entrant lock
        copy = (
            f"copy ({query}) to '{_sql_literal(str(tmp))}' "
            f"(format parquet, compression zstd, row_group_size {ROW_GROUP_SIZE}, kv_metadata {{{kv}}})"
        )
        con.execute(copy, query_params) if query_params else con.execute(copy)
    return path
