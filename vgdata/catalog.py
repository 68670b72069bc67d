"""A catalog folder: Parquet tables, ``build.json`` and ``catalog.duckdb`` (views only).

Layout of ``catalogs/<name>/``::

    images/<collection>-<shard>.parquet      one row per image (crop or photo)
    panoramas/<collection>-<shard>.parquet   one row per source panorama
    rejects/<collection>-<shard>.parquet     one row per rejected input, with its reason
    crops/<collection>/...                   JPEG crops we cut (imports stay where they are)
    build.json                               parameters, counts, fingerprints; written last
    catalog.duckdb                           views over the Parquet tables, rebuilt from vgdata/sql

Every file is written under a temporary name and renamed into place, so a crash
never leaves a half-written table where a reader would take it for a whole one.

One writer per catalog: every function that writes a catalog (builds, splits, manifests,
``build.json``) holds :func:`writer_lock`, an exclusive OS lock (``flock``) on
``<catalog>/.lock``, for the whole write. A second writer waits (one line on stderr naming
the holder) or, with ``wait=False`` (``--no-wait``), raises :class:`CatalogBusy`. The OS
drops the lock when its holder dies, however it dies, so there is never a stale lock to
delete. Readers (``info``, ``export``, vgtrain) take no lock: every file they read is
replaced atomically.
The views use paths relative to the catalog folder; :func:`connect` sets DuckDB's
``file_search_path`` so the folder can be moved. From the DuckDB shell, open it from
inside the folder (``cd catalogs/x && duckdb catalog.duckdb``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import errno
import hashlib
import json
import os
import shlex
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from vgdata.errors import UsageError, VgdataError
from vgdata.extras import require_catalog_extra
from vgdata.fsio import atomic_path, atomic_write_bytes, atomic_write_table
from vgdata.schema import TABLES
from vgdata.views import split_view_statements, stale_split, stored_splits

require_catalog_extra()  # duckdb, polars, pyproj, shapely: one line naming the extra, not a traceback

FORMAT = "vgdata-catalog/1"
MANIFEST_FORMAT = "4"
"""``vgdata.manifest_format`` of the manifests written now. 2: image roots relative to the catalog;
3: also a ``utm_epsg`` column (the coordinate system of each row); 4: eval manifests also hold a
``positives_<t>m`` column per radius and ``thresholds`` (and ``by_threshold``) in their params."""
SQL_DIR = Path(__file__).parent / "sql"


def table_digest(table: pa.Table) -> str:
    """A content hash of a table: its schema and its rows in their order (sha256 hex)."""
    h = hashlib.sha256()
    h.update(str(table.schema.remove_metadata()).encode())
    for name, column in zip(table.column_names, table.columns, strict=True):
        h.update(name.encode())
        h.update(json.dumps(column.to_pylist(), default=str).encode())
    return h.hexdigest()


def combine_digests(items: Iterable[tuple[str, str]]) -> str:
    """Order-independent combination of ``(key, digest)`` pairs into one sha256 hex digest."""
    h = hashlib.sha256()
    for key, digest in sorted(items):
        h.update(f"{key}={digest};".encode())
    return h.hexdigest()


# ---------- one writer per catalog

LOCK_FILE = ".lock"
"""Name of the lock file inside a catalog folder; it holds the current writer's JSON description."""


class CatalogBusy(VgdataError):
    """Another process is writing this catalog and the caller asked not to wait (``--no-wait``).

    Exit code 75 (``EX_TEMPFAIL``: try again later).
    """

    exit_code = 75


_wait_default: contextvars.ContextVar[bool] = contextvars.ContextVar("vgdata_writer_wait", default=True)
_held: dict[tuple[str, int], list[Any]] = {}  # (catalog realpath, thread id) -> [fd, depth]
_held_guard = threading.Lock()


@contextlib.contextmanager
def lock_waiting(wait: bool) -> Iterator[None]:
    """Make ``wait`` the default of every :func:`writer_lock` taken inside this block.

    For a library call that has no ``wait`` parameter of its own (``split_groups``).
    """
    token = _wait_default.set(wait)
    try:
        yield
    finally:
        _wait_default.reset(token)


def _one_line(text: str, limit: int = 240) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _holder_text(lock_path: Path) -> str:
    """``pid 123 (build collection 'database': cli.py build-catalog ..., since 2024-05-01 12:00:03)``."""
    try:
        info = json.loads(lock_path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # what the file says is from an earlier holder; the new one is writing it
        return "another process"
    except PermissionError:
        pass
    what = _one_line(str(info.get("task", "")))
    command = _one_line(str(info.get("command", "")))
    return f"pid {pid} ({what}: {command}, since {_one_line(str(info.get('started', '?')))})"


def _print_wait(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def writer_lock(
    catalog: str | os.PathLike[str],
    *,
    task: str,
    wait: bool | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the catalog's exclusive writer lock (``flock`` on ``<catalog>/.lock``) for the block.

    ``task`` says what the holder does (it is written into the lock file, with the pid, the
    command line and the start time, for the others' messages). When another process holds
    the lock: with ``wait`` (default: True, or what :func:`lock_waiting` set) ``on_wait``
    gets one line naming the holder (default: printed to stderr) and the call blocks until
    the lock is free; without, :class:`CatalogBusy` is raised naming the holder. Re-entrant
    within one thread. The catalog folder must exist. The lock dies with its process.
    """
    import fcntl

    root = Path(catalog)
    key = (os.path.realpath(root), threading.get_ident())
    with _held_guard:
        held = _held.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield
        finally:
            with _held_guard:
                held[1] -= 1
        return

    wait = _wait_default.get() if wait is None else wait
    lock_path = root / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(lock_path)
            if not wait:
                raise CatalogBusy(
                    f"{root} is being written by {holder}; run again when it has finished, "
                    "or without --no-wait to wait for it"
                ) from None
            (on_wait or _print_wait)(f"waiting: {root} is being written by {holder} (Ctrl-C to stop waiting)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        me = {
            "pid": os.getpid(),
            "task": task,
            "command": " ".join([Path(sys.argv[0]).name, *map(shlex.quote, sys.argv[1:])]) if sys.argv else "",
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        with _held_guard:
            _held[key] = [fd, 1]
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


def holds_writer_lock(catalog: str | os.PathLike[str]) -> bool:
    """True when this thread holds the writer lock of ``catalog``."""
    return (os.path.realpath(Path(catalog)), threading.get_ident()) in _held


class Catalog:
    """A catalog folder. Cheap to construct; nothing is read until asked."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ---------- paths
    def table_dir(self, table: str) -> Path:
        """Folder holding the Parquet parts of ``table`` (images, panoramas, rejects)."""
        return self.root / table

    def part_path(self, table: str, collection: str, shard: str) -> Path:
        """Path of one Parquet part: ``<table>/<collection>-<shard>.parquet``."""
        return self.table_dir(table) / f"{collection}-{shard}.parquet"

    @property
    def build_json(self) -> Path:
        return self.root / "build.json"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "catalog.duckdb"

    # ---------- build.json
    def exists(self) -> bool:
        """True when a finished build.json is present."""
        return self.build_json.is_file()

    def load_build(self) -> dict[str, Any]:
        """The parsed build.json, or a fresh empty description when there is none.

        Splits stored in the previous format are returned converted (:func:`vgdata.views.stored_splits`).
        """
        if not self.build_json.is_file():
            return {"format": FORMAT, "collections": {}}
        build = json.loads(self.build_json.read_text())
        if "splits" in build:
            build["splits"] = stored_splits(build["splits"])
        return build

    def require(self) -> dict[str, Any]:
        """The parsed build.json; a one-line error if this folder is not a catalog."""
        if not self.build_json.is_file():
            raise UsageError(f"{self.root} is not a catalog (no build.json); run `vgdata build-catalog` first")
        return self.load_build()

    def write_build(self, build: dict[str, Any]) -> None:
        """Write build.json atomically and durably (the last step of every build).

        Callers hold :func:`writer_lock` and read build.json again under it before changing it,
        so two writers never lose each other's entries.
        """
        atomic_write_bytes(self.build_json, (json.dumps(build, indent=2, sort_keys=True) + "\n").encode(), fsync=True)

    def image_root(self, collection: str, build: dict[str, Any] | None = None) -> Path:
        """Absolute folder that the ``path`` column of ``collection`` is relative to."""
        build = build or self.require()
        info = build["collections"].get(collection)
        if info is None:
            raise UsageError(f"no collection {collection!r} in {self.root}")
        root = Path(info["image_root"])
        return root if root.is_absolute() else (self.root / root).resolve()

    def image_roots(self, build: dict[str, Any] | None = None) -> dict[str, str]:
        """Absolute image root of every collection."""
        build = build or self.require()
        return {c: str(self.image_root(c, build)) for c in sorted(build["collections"])}

    def manifest_image_roots(self, build: dict[str, Any] | None = None) -> dict[str, str]:
        """The image root of every collection as manifests carry it (format :data:`MANIFEST_FORMAT`).

        Relative to the catalog folder, POSIX separators (``crops/database``), when the root is inside
        the catalog (cut crops; an '@' folder imported from inside it); absolute otherwise (an '@'
        folder imported in place elsewhere, which does not move with the catalog). vgtrain resolves a
        relative root against the parent of the manifest's folder (``<catalog>/manifests/..``).
        """
        build = build or self.require()
        base = self.root.resolve()
        out = {}
        for c in sorted(build["collections"]):
            stored = Path(build["collections"][c]["image_root"])
            if not stored.is_absolute() and ".." not in stored.parts:  # as build.json says: crops/<collection>
                out[c] = stored.as_posix()
                continue
            root = self.image_root(c, build).resolve()
            out[c] = root.relative_to(base).as_posix() if root.is_relative_to(base) else str(root)
        return out

    def manifest_metadata(self, build: dict[str, Any], *, kind: str, params: dict[str, Any]) -> dict[str, str]:
        """The key-value metadata of a manifest of this catalog (the contract vgtrain's ``manifest`` module reads).

        Keys: ``vgdata.manifest_format`` (:data:`MANIFEST_FORMAT`), ``vgdata.kind``, ``vgdata.params``
        (JSON), ``vgdata.catalog_fingerprint``, ``vgdata.image_roots`` (JSON, :meth:`manifest_image_roots`),
        ``vgdata.catalog_location`` (the catalog's absolute path now; informational, never used to
        find images) and ``vgdata.tool_version``.
        """
        from vgdata import __version__

        return {
            "vgdata.manifest_format": MANIFEST_FORMAT,
            "vgdata.kind": kind,
            "vgdata.params": json.dumps(params, sort_keys=True),
            "vgdata.catalog_fingerprint": build["fingerprint"],
            "vgdata.image_roots": json.dumps(self.manifest_image_roots(build), sort_keys=True),
            "vgdata.catalog_location": str(self.root.resolve()),
            "vgdata.tool_version": __version__,
        }

    # ---------- manifests
    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    # ---------- sets: a collection name or a split view
    def set_names(self, con=None) -> list[str]:
        """Names usable where a SPLIT_OR_COLLECTION is asked for."""
        build = self.require()
        names = list(build["collections"])
        for split in build.get("splits", {}).values():
            names.extend(split["views"])
        return sorted(set(names))

    def set_sql(self, name: str) -> str:
        """A SQL relation (``select * from images ...``) for a collection or a split view name."""
        build = self.require()
        if name in build["collections"]:
            return f"select * from images where collection = '{_sql_literal(name)}'"
        for split_name, split in build.get("splits", {}).items():
            if name in split["views"]:
                if (why := stale_split(build, split_name)) is not None:
                    raise UsageError(why)
                return f'select * from "{name}"'
        raise UsageError(f"no collection or split named {name!r} in {self.root}; have: {', '.join(self.set_names())}")

    def parts(self, table: str, collection: str) -> list[Path]:
        """Existing Parquet parts of one collection in one table: ``<collection>-<shard>.parquet``.

        Shard names have no '-', so the parts of ``a`` are not confused with those of ``a-b``.
        """
        prefix = f"{collection}-"
        return sorted(
            p for p in self.table_dir(table).glob(f"{collection}-*.parquet") if "-" not in p.stem[len(prefix) :]
        )

    # ---------- DuckDB
    def ensure_table_dirs(self) -> None:
        """Give every table a zero-row part with the full schema.

        The views read ``<table>/*.parquet`` with ``union_by_name``, so this part makes every
        contract column exist (null where a part lacks it) and the views resolve even for a
        table with no data yet.
        """
        import pyarrow.parquet as pq

        for name, schema in TABLES.items():
            d = self.table_dir(name)
            d.mkdir(parents=True, exist_ok=True)
            empty = d / "_empty.parquet"
            if not empty.is_file() or not pq.read_schema(empty).equals(schema):  # a newer schema: new columns
                atomic_write_table(empty, schema.empty_table())

    def views_digest(self) -> str:
        """sha256 of everything catalog.duckdb is made from: the SQL files and the split definitions."""
        h = hashlib.sha256()
        for sql in sql_files():
            h.update(sql.name.encode())
            h.update(sql.read_bytes())
        h.update(json.dumps(self.load_build().get("splits", {}), sort_keys=True).encode())
        return h.hexdigest()

    def write_views(self) -> None:
        """(Re)create catalog.duckdb from the SQL files; it holds views and macros only.

        It also defines ``vgdata_views_digest()``, so :meth:`connect` can tell when the SQL
        files or the splits changed (a tool upgrade, a new split) and rebuild it.
        """
        import duckdb

        self.ensure_table_dirs()
        with atomic_path(self.duckdb_path) as tmp:
            con = duckdb.connect(str(tmp))
            try:
                con.execute(f"set file_search_path = '{_sql_literal(str(self.root.resolve()))}'")
                for sql in sql_files():
                    con.execute(sql.read_text())
                splits = self.load_build().get("splits", {})
                for statement in split_view_statements(splits):
                    con.execute(statement)
                con.execute(f"create or replace macro vgdata_views_digest() as '{self.views_digest()}'")
            finally:
                con.close()
            Path(f"{tmp}.wal").unlink(missing_ok=True)

    def _views_current(self) -> bool:
        import duckdb

        try:
            con = duckdb.connect(str(self.duckdb_path), read_only=True)
        except duckdb.Error:
            return False
        try:
            return con.execute("select vgdata_views_digest()").fetchall()[0][0] == self.views_digest()
        except duckdb.Error:
            return False
        finally:
            con.close()

    def connect(self, read_only: bool = True):
        """A DuckDB connection to catalog.duckdb (rebuilt first if stale), searching the catalog folder."""
        import duckdb

        self.require()
        if self.duckdb_path.is_file() and not os.access(self.duckdb_path, os.R_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.duckdb_path))
        if not self.duckdb_path.is_file() or not self._views_current():
            if not os.access(self.root, os.W_OK):
                raise VgdataError(
                    f"{self.duckdb_path} is missing or out of date and {self.root} is not writable: run any vgdata "
                    "command that writes this catalog (e.g. `vgdata info`) once as a user who may write it"
                )
            self.write_views()
        con = duckdb.connect(str(self.duckdb_path), read_only=read_only)
        con.execute(f"set file_search_path = '{_sql_literal(str(self.root.resolve()))}'")
        return con


def sql_files() -> list[Path]:
    """The SQL files of catalog.duckdb (staging, core, splits, manifests; tests are audits, not views),
    in dependency order: each after every file whose macros or views it uses.

    The order is derived from what each file defines and uses (:func:`vgdata.sql_order.order_sql_files`),
    not from file names; a cycle or an undefined name raises :class:`vgdata.sql_order.SqlOrderError`.
    """
    from vgdata.sql_order import order_sql_files

    layers = ["staging", "core", "splits", "manifests"]
    return order_sql_files([p for layer in layers for p in (SQL_DIR / layer).glob("*.sql")], root=SQL_DIR)


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")
