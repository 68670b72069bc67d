"""Dataset splits: named views over one collection, chosen by year or drawn for validation.

A split is a definition in ``build.json`` (``"splits": {name: {"macro", "args", "views"}}``:
a table macro of ``vgdata/sql/splits/``, its arguments, and each view's own arguments; see
:mod:`vgdata.views`) and one or two views in ``catalog.duckdb`` that select from that macro. Splits are views over collections and years, not copies: they follow
the collection's rows whenever :meth:`vgdata.catalog.Catalog.write_views` rebuilds the views.
Every view name is a set name (:meth:`vgdata.catalog.Catalog.set_sql`) and has exactly the
columns of ``images``.

=====  =====================================  ===========================  =======================
kind   function                               views                        macro
=====  =====================================  ===========================  =======================
years  ``split_years(queries_from=...)``      ``<name>_database``,         ``year_split``
                                              ``<name>_queries``
test   ``split_test(year=2013)``              ``<name>``                   ``test_database``
val    ``split_val(size=...)``                ``<name>_database``,         ``val_split``
                                              ``<name>_queries``
=====  =====================================  ===========================  =======================

Years are whole calendar years (the ``year`` column), never dates:

* ``<name>_queries`` = images with ``year >= queries_from``;
* ``<name>_database`` = images with ``year < database_before`` (default: ``queries_from``);
* images with a null year are in neither view.

The paper's splits (REFERENCE.md f): SF-XL* takes images "taken after 2010" as queries and the
rest as database, i.e. ``queries_from=2011`` (queries 2011 and later, database 2010 and
earlier); SF-XL** takes images "after 2015" as queries and "before 2015" as database, i.e.
``queries_from=2016, database_before=2015`` (queries 2016 and later, database 2014 and
earlier; 2015 is in neither). :data:`SFXL_STAR` and :data:`SFXL_STAR_STAR` hold these.

The validation split (``val_split`` in SQL, where the full procedure is documented) draws
``size`` query and ``size`` database images spread over the whole area: panoramas are
binned on a square grid chosen (``val_grid``) to have about ``size`` cells with two or more
panoramas; ``size`` of those cells are picked by a seeded md5, and each gives one query
image and one database image from two different panoramas of the cell, within ``threshold``
metres of each other whenever the cell allows it. Query and database panoramas are
therefore disjoint. When the collection has fewer such cells than ``size`` (fewer than
``2 * size`` panoramas, or panoramas that never share a cell), both views have as many
images as there are cells. The same catalog rows and seed give the same images on any
machine (md5 of text, not DuckDB's version-dependent ``hash``); adding rows to the
collection may change the draw. The grid side is computed once and stored in the split's
params (``grid_m``), so the views do not re-run the grid search.

Defining a split under an existing name replaces that split (its old views disappear).
Defining a split holds the catalog's writer lock (:func:`vgdata.catalog.writer_lock`) from
reading ``build.json`` to writing it and the views; ``wait=False`` raises
:class:`vgdata.catalog.CatalogBusy` instead of waiting for another writer.
SQL text is built from values in one place, :func:`vgdata.views.split_view_statements` (views
cannot take prepared parameters; :mod:`vgdata.catalog` renders the stored splits with it too),
through :func:`vgdata.views.literal`, which renders checked literals only; the other queries
here pass their values as prepared parameters.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from vgdata.catalog import Catalog, sql_files, writer_lock
from vgdata.errors import UsageError
from vgdata.views import NAME_RE, check_name, literal, split_view_statements

__all__ = [
    "NAME_RE",
    "RESERVED",
    "SFXL_STAR",
    "SFXL_STAR_STAR",
    "SplitResult",
    "split_test",
    "split_val",
    "split_view_statements",
    "split_years",
]

SFXL_STAR: dict[str, int] = {"queries_from": 2011}
"""SF-XL*: queries taken after 2010 (2011 on), database the rest (2010 and before)."""

SFXL_STAR_STAR: dict[str, int] = {"queries_from": 2016, "database_before": 2015}
"""SF-XL**: queries taken after 2015 (2016 on), database before 2015 (2014 and before)."""

RESERVED = {"images", "panoramas", "rejects", "attributes"}
"""View names of the catalog's own tables; a split view may not take them."""


@dataclass
class SplitResult:
    """What a split defined: its build.json entry and the rows of each of its views."""

    name: str
    kind: str
    params: dict[str, Any]
    counts: dict[str, int]
    """View name -> number of images in it (at definition time)."""
    notes: list[str] = field(default_factory=list)
    """One-line remarks, e.g. a val split with fewer images than asked."""
    queries_with_positive: int | None = None
    """val only: queries with at least one val database image within ``threshold`` metres."""

    @property
    def views(self) -> list[str]:
        return list(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "views": self.views}


# ---------- the API
def split_years(
    catalog: str | os.PathLike[str],
    *,
    name: str,
    queries_from: int,
    database_before: int | None = None,
    collection: str = "database",
    wait: bool = True,
) -> SplitResult:
    """Define a year split: views ``<name>_queries`` (year >= queries_from) and ``<name>_database``.

    ``<name>_database`` holds the images with ``year < database_before`` (default
    ``queries_from``); images without a year are in neither. SF-XL* is ``queries_from=2011``,
    SF-XL** is ``queries_from=2016, database_before=2015`` (:data:`SFXL_STAR`,
    :data:`SFXL_STAR_STAR`). Defining an existing split name again replaces that split.
    """
    literal(queries_from, "int", "queries_from")
    literal(database_before, "int?", "database_before")
    if database_before is not None and database_before > queries_from:
        raise UsageError(
            f"database_before ({database_before}) must be <= queries_from ({queries_from}), "
            "or the database and the queries would share years"
        )
    params = {"queries_from": queries_from, "database_before": database_before, "collection": collection}
    return _define(catalog, name, "years", params, wait=wait)


def split_test(
    catalog: str | os.PathLike[str],
    *,
    name: str = "test_database",
    year: int = 2013,
    collection: str = "database",
    wait: bool = True,
) -> SplitResult:
    """Define an SF-XL-style test database: view ``<name>`` = the images of one capture year.

    SF-XL's test database is its crops of 2013. Images without a year are never in it.
    Defining an existing split name again replaces that split.
    """
    literal(year, "int", "year")
    return _define(catalog, name, "test", {"year": year, "collection": collection}, wait=wait)


def split_val(
    catalog: str | os.PathLike[str],
    *,
    name: str = "val",
    size: int,
    seed: int = 0,
    collection: str = "database",
    threshold: float = 25.0,
    grid_m: float | None = None,
    wait: bool = True,
) -> SplitResult:
    """Define a validation split: views ``<name>_database`` and ``<name>_queries``, ``size`` images each.

    Drawn deterministically from ``seed`` over the whole area (one pair of images per grid cell,
    query and database from different panoramas, within ``threshold`` metres where the cell
    allows it); see the module docstring and ``vgdata/sql/splits/val_split.sql``. ``grid_m`` (the
    cell side in metres) defaults to ``val_grid``'s choice for ``size``. When the collection
    cannot give ``size`` pairs, both views hold as many as it can (``notes`` says so).
    Defining an existing split name again replaces that split.
    """
    literal(size, "int", "size")
    literal(seed, "int", "seed")
    literal(threshold, "float", "threshold")
    if size < 1:
        raise UsageError(f"size must be >= 1, got {size}")
    if threshold <= 0:
        raise UsageError(f"threshold must be > 0 metres, got {threshold}")
    if grid_m is not None:
        literal(grid_m, "float", "grid_m")
        if grid_m <= 0:
            raise UsageError(f"grid_m must be > 0 metres, got {grid_m}")
    grid_m = None if grid_m is None else float(grid_m)
    params = {"size": size, "seed": seed, "threshold": float(threshold), "grid_m": grid_m, "collection": collection}
    return _define(catalog, name, "val", params, wait=wait)


def _define(
    catalog: str | os.PathLike[str], name: str, kind: str, params: dict[str, Any], *, wait: bool = True
) -> SplitResult:
    """Under the writer lock: check the split on a private connection, store it in build.json, rebuild the views."""
    cat = Catalog(catalog)
    cat.require()  # "not a catalog" before any lock file is made
    check_name(name, "split name")
    with writer_lock(cat.root, task=f"define split {name!r}", wait=wait):
        return _define_locked(cat, name, kind, params)


def _define_locked(cat: Catalog, name: str, kind: str, params: dict[str, Any]) -> SplitResult:
    build = cat.require()
    collection = check_name(params["collection"], "collection")
    if collection not in build["collections"]:
        raise UsageError(
            f"no collection {collection!r} in {cat.root}; use one of: {', '.join(sorted(build['collections']))}"
        )
    definition = _definition(name, kind, params)
    views = sorted(definition["views"])
    notes: list[str] = []
    positives = None
    con = probe_connection(cat)
    try:
        check_view_names(con, build, name, views)
        if kind == "val" and params["grid_m"] is None:
            params["grid_m"] = _val_grid(con, params["size"], collection)
            definition = _definition(name, kind, params)
        for statement in split_view_statements({name: definition}):
            con.execute(statement)
        if kind == "val":  # small: keep the draw, so counting and positives do not draw again
            for view in views:
                con.execute(f'create temp table "drawn_{view}" as select * from "{view}"')
            views_read = {view: f"drawn_{view}" for view in views}
        else:
            views_read = {view: view for view in views}
        counts = {view: con.sql(f'select count(*) from "{views_read[view]}"').fetchall()[0][0] for view in views}
        empty = [view for view, n in counts.items() if n == 0]
        if empty:
            raise UsageError(_empty_message(con, name, kind, params, empty))
        if kind in ("val", "years"):  # the cheap audits: on the drawn rows (val), on the two views (years)
            from vgdata.check import audit_split

            audit_split(con, name, f"{kind.rstrip('s')}_split", views_read[views[0]], views_read[views[1]])
        if kind == "val":
            positives = _queries_with_positive(con, views_read[views[0]], views_read[views[1]], params["threshold"])
            if counts[views[1]] < params["size"]:
                notes.append(
                    f"{collection} gives only {counts[views[1]]} of the {params['size']} pairs asked for "
                    "(one pair per grid cell holding two or more panoramas)"
                )
    finally:
        con.close()
    store_split(cat, name, definition)
    return SplitResult(name, kind, dict(params), counts, notes, positives)


def store_split(cat: Catalog, name: str, definition: dict[str, Any]) -> None:
    """Record split ``name`` in build.json and rebuild the views; the caller holds the writer lock.

    build.json is read here (read-modify-write under the lock), so splits another command stored
    since the caller started are kept.
    """
    build = cat.load_build()
    build.setdefault("splits", {})[name] = definition
    cat.write_build(build)
    cat.write_views()


def _definition(name: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The build.json entry of a split: ``{"macro", "args", "views"}`` (rendered by :mod:`vgdata.views`).

    ``params`` are the checked values of ``split_<kind>``; ``collection`` is the macros' ``coll``.
    Views ``<name>_database`` / ``<name>_queries`` pass the macro's ``role``; a test split has one view, ``<name>``.
    """
    args = {("coll" if key == "collection" else key): value for key, value in params.items()}
    if kind == "test":
        return {"macro": "test_database", "args": args, "views": {name: {}}}
    macro = {"years": "year_split", "val": "val_split"}[kind]
    views = {f"{name}_{role}": {"role": role} for role in ("database", "queries")}
    return {"macro": macro, "args": args, "views": views}


def probe_connection(cat: Catalog):
    """An in-memory DuckDB with the catalog's views and macros, to try a split before storing it."""
    import duckdb

    cat.ensure_table_dirs()
    con = duckdb.connect()
    root = str(cat.root.resolve()).replace("'", "''")
    con.execute(f"set file_search_path = '{root}'")
    for sql in sql_files():
        con.execute(sql.read_text())
    return con


def check_view_names(con, build: dict[str, Any], name: str, views: list[str]) -> None:
    """Views must not shadow a collection, a catalog view or another split's view (case-insensitive)."""
    taken = {c.lower(): f"collection {c!r}" for c in build["collections"]}
    taken.update({r: f"the catalog view {r!r}" for r in RESERVED})
    for (view,) in con.sql("select view_name from duckdb_views() where not internal").fetchall():
        taken[view.lower()] = f"the catalog view {view!r}"
    for other, definition in build.get("splits", {}).items():
        if other != name:
            for view in definition.get("views", []):
                taken[view.lower()] = f"a view of split {other!r}"
    for view in views:
        if view.lower() in taken:
            raise UsageError(
                f"split {name!r} would create view {view!r}, which is taken by {taken[view.lower()]}; choose another name"
            )


def _val_grid(con, size: int, collection: str) -> float:
    row = con.sql(
        "select side_m from val_grid(size := $size, coll := $coll)", params={"size": size, "coll": collection}
    )
    row = row.fetchall()
    if not row:
        raise UsageError(f"collection {collection!r} has no images with UTM coordinates; a val split needs them")
    return float(row[0][0])


def _queries_with_positive(con, database_table: str, queries_table: str, threshold: float) -> int:
    """Queries of the val split with a val database image within ``threshold`` (core/positives.sql)."""
    return con.sql(
        "select count(distinct query_image_id) from positives($database, $queries, threshold := $threshold)",
        params={"database": database_table, "queries": queries_table, "threshold": float(threshold)},
    ).fetchall()[0][0]


def _empty_message(con, name: str, kind: str, params: dict[str, Any], empty: list[str]) -> str:
    """One line: which view would be empty and what the collection has instead."""
    years = con.sql(
        "select min(year), max(year), count(*) filter (where year is not null) from images where collection = $coll",
        params={"coll": params["collection"]},
    ).fetchall()[0]
    have = f"its years are {years[0]}-{years[1]}" if years[2] else "it has no images with a year"
    what = ", ".join(empty)
    if kind == "years":
        return (
            f"split {name!r}: {what} would be empty in collection {params['collection']!r} ({have}); "
            "choose --queries-from / --database-before inside that range"
        )
    if kind == "test":
        return f"split {name!r}: no images of {params['year']} in collection {params['collection']!r} ({have}); choose another --year"
    return (
        f"split {name!r}: {what} would be empty: collection {params['collection']!r} needs at least two panoramas "
        "with UTM coordinates for a val split"
    )
