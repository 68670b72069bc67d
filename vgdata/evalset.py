"""Evaluation sets: a database, a query set and each query's positives, as one Parquet manifest.

``eval_set(catalog, name="v1", database="database", queries="queries_v1")`` writes
``manifests/eval_v1.parquet``. ``database`` and ``queries`` are set names: a collection or a
split view (:meth:`vgdata.catalog.Catalog.set_sql`). vgtrain reads the file with pyarrow only.

Table layout (one row per image; database rows first, then query rows):

==============  ==================  =====================================================
column          type                meaning
==============  ==================  =====================================================
role            string              ``'database'`` or ``'query'``
idx             int32               0-based position within its role, in (path, image_id)
                                    order; the file holds the database rows in idx order,
                                    then the query rows in idx order, so file row i is
                                    database idx i and file row n_database + j query idx j
image_id        int64               the catalog's image id
collection      string              the image's collection
path            string              relative to the collection's image root; the roots are
                                    the metadata key ``vgdata.image_roots`` (JSON:
                                    collection -> folder, relative to the catalog when
                                    inside it)
utm_east        float64             metres
utm_north       float64             metres
utm_zone        int16               1..60; null for names without a zone (Nordland)
utm_epsg        int32               the coordinate system: 326zz north, 327zz south; null without a zone
heading         float64             degrees clockwise from north; null when unknown
width           int32               pixels
height_px       int32               pixels
positives       list<int32>         queries: sorted database ``idx`` within ``threshold``
                                    metres (an empty list when none); null on database rows
positives_<t>m  list<int32>         one column per radius of ``thresholds`` (the primary
                                    included), ascending: as ``positives`` for radius t
==============  ==================  =====================================================

Thresholds: ``threshold`` may be one radius or a sequence of radii (``vgdata eval-set
--threshold 25 --threshold 10 --threshold 50``). The **first** one is the primary radius:
its positives are the ``positives`` column that every reader uses (CosPlace's Recall@N,
``vgtrain fit``'s validation). Each distinct radius t also gets a column
``positives_<t>m`` (:func:`threshold_column`): t written in plain decimal with the shortest
digits that give the float back, trailing zeros and point dropped, the point as ``_``:
10 -> ``positives_10m``, 12.5 -> ``positives_12_5m``, 0.25 -> ``positives_0_25m``.
The positives of every radius come from one grid join at the largest radius, then filtered
by squared distance, so each column equals what that radius alone gives and a smaller radius's
list is a subset of a larger one's (both audited).

Positives (``vgdata/sql/core/positives.sql``): Euclidean distance in UTM metres, inclusive
(``de**2 + dn**2 <= threshold**2``), as CosPlace's ``radius_neighbors(radius=25)`` counts
them, but only between images of one coordinate system: the same ``utm_epsg`` (UTM zone and
hemisphere, :func:`vgdata.geo.utm_epsg`). Images without a zone form one system of their own.
Images without finite UTM coordinates have no positives and are nobody's positive. The join
buckets both sides into square cells of side ``threshold`` and compares each query with the
database images of its own cell and the 8 around it, so it never forms a cross product.

Key-value metadata (:meth:`vgdata.catalog.Catalog.manifest_metadata`): ``vgdata.manifest_format``,
``vgdata.kind`` = ``"eval"``, ``vgdata.params``, ``vgdata.catalog_fingerprint``, ``vgdata.image_roots``,
``vgdata.catalog_location``, ``vgdata.tool_version``. ``vgdata.params`` (JSON): database, queries,
threshold (the primary radius), thresholds (every radius, ascending floats), the two sets'
fingerprints, the counts of the primary radius (n_database, n_queries, queries_without_positives,
mean_positives) and ``by_threshold``: ``{"10": {"queries_without_positives": n, "mean_positives":
x}, ...}`` (keys: :func:`threshold_key`). Queries without positives stay in the manifest: CosPlace
counts them as misses, while MSLS and the gsv family drop them; the counts give both denominators.
Running ``eval_set`` again with the same parameters (the same radii in any order, the same primary)
on an unchanged catalog (same fingerprints, manifest format, tool version and image roots; a catalog
moved elsewhere is unchanged) reuses the file (a read-only catalog is fine then). Writing the file holds the catalog's writer lock
(:func:`vgdata.catalog.writer_lock`); the table is computed under it, from the catalog as
it is then.

One writer (:func:`vgdata.manifest.write_manifest`): the rows of the ``eval_set`` macro
(``vgdata/sql/manifests/eval_set.sql``) are materialised once, counted, copied by DuckDB to the
Parquet file, and audited (the ``eval_set`` audits of ``vgdata/sql/tests/``: every positive of
every column within its radius and in the query's coordinate system, the radii's lists nested,
``positives`` equal to the primary radius's column) before eval_set returns; rows found there are
a bug (:class:`vgdata.check.AuditFailed`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vgdata import __version__
from vgdata.catalog import MANIFEST_FORMAT, Catalog, writer_lock
from vgdata.check import audit_eval_rows
from vgdata.errors import UsageError
from vgdata.manifest import write_manifest

KIND = "eval"
DEFAULT_THRESHOLD = 25.0
"""Metres; CosPlace's ``--positive_dist_threshold`` (REFERENCE.md section c)."""
MAX_THRESHOLDS = 16
"""Radii one eval set may hold (a column each)."""

EVAL_SCHEMA = pa.schema(
    [
        ("role", pa.string()),
        ("idx", pa.int32()),
        ("image_id", pa.int64()),
        ("collection", pa.string()),
        ("path", pa.string()),
        ("utm_east", pa.float64()),
        ("utm_north", pa.float64()),
        ("utm_zone", pa.int16()),
        ("utm_epsg", pa.int32()),
        ("heading", pa.float64()),
        ("width", pa.int32()),
        ("height_px", pa.int32()),
        ("positives", pa.list_(pa.int32())),
    ]
)
"""The columns every eval manifest has; :func:`eval_schema` adds one ``positives_<t>m`` per radius."""

PAIRS_SCHEMA = pa.schema(
    [("query_image_id", pa.int64()), ("database_image_id", pa.int64()), ("distance_m", pa.float64())]
)

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DB_VIEW = "vgdata_eval_database"
_Q_VIEW = "vgdata_eval_queries"
_ROWS = "vgdata_eval_rows"
_DUCKDB_TYPES = {pa.string(): "varchar", pa.int16(): "smallint", pa.int32(): "integer", pa.int64(): "bigint",
                 pa.float64(): "double", pa.list_(pa.int32()): "integer[]"}  # fmt: skip
_ROWS_SQL = f"from {_ROWS} order by role, idx"
"""The manifest: the materialised rows (already in :func:`eval_schema`'s columns), database rows first, each role by idx."""
_INPUT_KEYS = ("database", "queries", "threshold", "thresholds", "database_fingerprint", "queries_fingerprint")


def threshold_key(threshold: float) -> str:
    """A radius as text: plain decimal, shortest digits giving the float back, no trailing zeros (25.0 -> ``"25"``,
    12.5 -> ``"12.5"``, 1e-05 -> ``"0.00001"``); the keys of ``by_threshold`` (and of vgtrain's recalls.json)."""
    text = format(Decimal(repr(float(threshold))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def threshold_column(threshold: float) -> str:
    """The manifest column of a radius: ``positives_<key>m`` with ``.`` as ``_`` (12.5 -> ``positives_12_5m``)."""
    return f"positives_{threshold_key(threshold).replace('.', '_')}m"


def eval_schema(thresholds: Sequence[float]) -> pa.Schema:
    """:data:`EVAL_SCHEMA` plus a ``positives_<t>m`` list<int32> column per radius, in the order given."""
    out = EVAL_SCHEMA
    for t in thresholds:
        out = out.append(pa.field(threshold_column(t), pa.list_(pa.int32())))
    return out


@dataclass
class EvalSetResult:
    """What :func:`eval_set` wrote (or found already written)."""

    manifest: Path
    """``<catalog>/manifests/eval_<name>.parquet``."""
    n_database: int
    """Database images (rows with role 'database')."""
    n_queries: int
    """Query images (rows with role 'query')."""
    queries_without_positives: int
    """Queries whose positives list (primary radius) is empty; they stay in Recall@N's denominator."""
    mean_positives: float
    """Mean number of positives per query (primary radius)."""
    reused: bool = False
    """True when an existing manifest with the same parameters and catalog was kept."""
    threshold: float = DEFAULT_THRESHOLD
    """The primary radius, metres."""
    by_threshold: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per radius (:func:`threshold_key`, ascending): ``queries_without_positives`` and ``mean_positives``."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["manifest"] = str(self.manifest)
        return d


def eval_set(
    catalog: str | Path,
    *,
    name: str,
    database: str,
    queries: str,
    threshold: float | Sequence[float] = DEFAULT_THRESHOLD,
    wait: bool = True,
) -> EvalSetResult:
    """Write ``manifests/eval_<name>.parquet``: ``database`` and ``queries`` with each query's positives.

    ``database``/``queries`` are collection or split-view names; ``threshold`` is the positive
    radius in metres (inclusive), or several radii, the first being the primary one (module
    docstring). Reuses the manifest when it was made from the same parameters on the same
    catalog. Raises :class:`UsageError` for a bad name or threshold, an unknown or empty set;
    :class:`vgdata.catalog.CatalogBusy` when another process writes the catalog and ``wait`` is False.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"eval set name must be letters, digits, '_' or '-' (it names eval_<name>.parquet), got {name!r}"
        )
    radii = _check_thresholds(threshold)
    cat = Catalog(catalog)
    path = cat.manifests_dir / f"eval_{name}.parquet"
    reused = _reuse(cat, path, database, queries, radii)  # no lock needed to read
    if reused is not None:
        return reused
    with writer_lock(cat.root, task=f"write eval set {name!r}", wait=wait):
        reused = _reuse(cat, path, database, queries, radii)  # the catalog as it is now, under the lock
        if reused is not None:
            return reused
        return _write_eval_set(cat, path, name, database, queries, radii)


def _inputs(cat: Catalog, build: dict[str, Any], database: str, queries: str, radii: list[float]) -> dict[str, Any]:
    return {
        "database": database,
        "queries": queries,
        "threshold": radii[0],
        "thresholds": sorted(radii),
        "database_fingerprint": _set_fingerprint(cat, build, database),
        "queries_fingerprint": _set_fingerprint(cat, build, queries),
    }


def _reuse(cat: Catalog, path: Path, database: str, queries: str, radii: list[float]) -> EvalSetResult | None:
    build = cat.require()
    inputs = _inputs(cat, build, database, queries, radii)
    params = _reusable_params(path, inputs, build["fingerprint"], cat.manifest_image_roots(build))
    return None if params is None else _result(path, params, reused=True)


def _write_eval_set(
    cat: Catalog, path: Path, name: str, database: str, queries: str, radii: list[float]
) -> EvalSetResult:
    """Materialise the ``eval_set`` macro's rows once, count them, COPY them (:func:`vgdata.manifest.write_manifest`)
    and run the ``eval_set`` audits on those same rows (:func:`vgdata.check.audit_eval_rows`)."""
    build = cat.require()
    inputs = _inputs(cat, build, database, queries, radii)
    thresholds = inputs["thresholds"]
    with _sets(cat, database, queries) as con:
        _materialise(con, radii[0], thresholds)
        counts = ", ".join(
            f"count(*) filter (where role = 'query' and len({c}) = 0), avg(len({c})) filter (where role = 'query')"
            for c in ["positives"] + [threshold_column(t) for t in thresholds]
        )
        row = con.sql(
            f"select count(*) filter (where role = 'database'), count(*) filter (where role = 'query'), {counts} "
            f"from {_ROWS}"
        ).fetchall()[0]
        n_database, n_queries, without, mean = row[:4]
        by_threshold = {
            threshold_key(t): {
                "queries_without_positives": int(row[4 + 2 * i]),
                "mean_positives": float(row[5 + 2 * i]),
            }
            for i, t in enumerate(thresholds)
        }
        params = {
            **inputs,
            "n_database": int(n_database),
            "n_queries": int(n_queries),
            "queries_without_positives": int(without),
            "mean_positives": float(mean),
            "by_threshold": by_threshold,
        }
        path = write_manifest(con, cat, build, f"eval_{name}", _ROWS_SQL, kind=KIND, params=params)
        audit_eval_rows(con, _ROWS, radii[0], path.name, thresholds={t: threshold_column(t) for t in thresholds})
    return _result(path, params, reused=False)


def eval_table(
    catalog: str | Path, *, database: str, queries: str, threshold: float | Sequence[float] = DEFAULT_THRESHOLD
) -> pa.Table:
    """The table :func:`eval_set` writes (layout in the module docstring), without writing it."""
    radii = _check_thresholds(threshold)
    thresholds = sorted(radii)
    with _sets(Catalog(catalog), database, queries) as con:
        _materialise(con, radii[0], thresholds)
        return con.sql(_ROWS_SQL).to_arrow_table().cast(eval_schema(thresholds))


def _materialise(con: Any, threshold: float, thresholds: list[float]) -> None:
    """Temp table ``_ROWS``: the rows of ``eval_set(database, queries, threshold, thresholds)``
    (manifests/eval_set.sql) in :func:`eval_schema`'s columns and types: ``threshold_positives[i]`` becomes
    the column of ``thresholds[i]``."""
    base = ", ".join(f"{f.name}::{_DUCKDB_TYPES[f.type]} as {f.name}" for f in EVAL_SCHEMA)
    extra = "".join(
        f", threshold_positives[{i + 1}]::integer[] as {threshold_column(t)}" for i, t in enumerate(thresholds)
    )
    con.execute(
        f"create or replace temp table {_ROWS} as select {base}{extra} from eval_set('{_DB_VIEW}', '{_Q_VIEW}', "
        "threshold := $threshold, thresholds := $thresholds::double[])",
        {"threshold": threshold, "thresholds": list(thresholds)},
    )


def positive_pairs(
    catalog: str | Path, *, database: str, queries: str, threshold: float = DEFAULT_THRESHOLD
) -> pa.Table:
    """Every (query_image_id, database_image_id, distance_m) pair within ``threshold`` metres, unordered.

    The grid-bucket join of ``vgdata/sql/core/positives.sql`` that :func:`eval_set` uses.
    """
    threshold = _check_threshold(threshold)
    with _sets(Catalog(catalog), database, queries) as con:
        rel = con.sql(
            f"from positives('{_DB_VIEW}', '{_Q_VIEW}', threshold := $threshold)", params={"threshold": threshold}
        )
        return rel.to_arrow_table().cast(PAIRS_SCHEMA)


# ---------- helpers


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise UsageError(f"threshold must be a number of metres, e.g. 25, got {threshold!r}")
    value = float(threshold)
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"threshold must be a finite number of metres > 0, e.g. 25, got {threshold!r}")
    return value


def _check_thresholds(threshold: float | Sequence[float]) -> list[float]:
    """The radii, primary first, each checked, duplicates dropped (a UsageError for none or too many)."""
    given = list(threshold) if isinstance(threshold, list | tuple) else [threshold]
    if not given:
        raise UsageError("give at least one threshold in metres, e.g. 25")
    radii = list(dict.fromkeys(_check_threshold(t) for t in given))
    if len(radii) > MAX_THRESHOLDS:
        raise UsageError(f"at most {MAX_THRESHOLDS} thresholds per eval set (a column each), got {len(radii)}")
    return radii


def _set_fingerprint(cat: Catalog, build: dict[str, Any], name: str) -> str:
    """The content fingerprint of a set: its collection's, or a hash of its split's build.json entry."""
    cat.set_sql(name)  # the UsageError for an unknown name, listing the known ones
    if name in build["collections"]:
        return build["collections"][name]["fingerprint"]
    for split_name, split in sorted(build.get("splits", {}).items()):
        if name in split["views"]:
            text = json.dumps({"split": split_name, "entry": split, "catalog": build["fingerprint"]}, sort_keys=True)
            return hashlib.sha256(text.encode()).hexdigest()
    raise UsageError(f"no collection or split named {name!r} in {cat.root}")  # set_sql already said so


@contextmanager
def _sets(cat: Catalog, database: str, queries: str) -> Iterator[Any]:
    """A read-only catalog connection with the two sets as temp views; refuses an empty set."""
    database_sql, queries_sql = cat.set_sql(database), cat.set_sql(queries)
    con = cat.connect()  # rebuilds catalog.duckdb first when its SQL or splits are stale
    try:
        for view, sql, role, set_name in (
            (_DB_VIEW, database_sql, "database", database),
            (_Q_VIEW, queries_sql, "queries", queries),
        ):
            con.execute(f"create or replace temp view {view} as {sql}")
            if not con.sql(f"select 1 from {view} limit 1").fetchall():
                raise UsageError(
                    f"{role} set {set_name!r} of {cat.root} has no images; build it first or pick another "
                    f"(have: {', '.join(cat.set_names())})"
                )
        yield con
    finally:
        con.close()


def _reusable_params(
    path: Path, inputs: dict[str, Any], fingerprint: str, image_roots: dict[str, str]
) -> dict[str, Any] | None:
    """The stored params of ``path`` when it was made from ``inputs`` on this catalog, else None."""
    if not path.is_file():
        return None
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    meta = {k.decode(): v.decode() for k, v in raw.items()}
    expected = {
        "vgdata.manifest_format": MANIFEST_FORMAT,
        "vgdata.kind": KIND,
        "vgdata.catalog_fingerprint": fingerprint,
        "vgdata.image_roots": json.dumps(image_roots, sort_keys=True),
        "vgdata.tool_version": __version__,
    }
    if any(meta.get(k) != v for k, v in expected.items()):
        return None
    try:
        params = json.loads(meta.get("vgdata.params", ""))
    except json.JSONDecodeError:
        return None
    if not isinstance(params, dict) or any(params.get(k) != inputs[k] for k in _INPUT_KEYS):
        return None
    return params


def _result(path: Path, params: dict[str, Any], *, reused: bool) -> EvalSetResult:
    return EvalSetResult(
        manifest=path,
        n_database=params["n_database"],
        n_queries=params["n_queries"],
        queries_without_positives=params["queries_without_positives"],
        mean_positives=params["mean_positives"],
        reused=reused,
        threshold=params["threshold"],
        by_threshold=params["by_threshold"],
    )
