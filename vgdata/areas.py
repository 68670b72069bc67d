"""``vgdata split-area``: a split view of the images inside (or outside) the polygons of a vector file.

Geographically disjoint training and test sets (the Pittsburgh / MSLS practice) are then one
command each: ``split-area --within city_centre.gpkg --name centre`` and ``... --outside --name
rest``. The view ``<name>`` has the columns of ``images`` and is used like any other split view:
wherever a set name is accepted (``eval-set --database/--queries``, :meth:`vgdata.catalog.Catalog.set_sql`).
``split-groups`` takes a collection, not a view (as for the other splits).

The area: every Polygon / MultiPolygon feature of the file (GeoJSON, GeoPackage with ``layer``,
Shapefile, anything pyogrio reads), in **any CRS** the file declares (a file without a CRS is
refused); other geometry types are ignored (a note says how many). Their union is the area.

Which images are inside, and why this way: each image's WGS84 ``lon``/``lat`` is transformed
(pyproj, ``always_xy``) **into the area file's own CRS** and tested there with shapely
(``intersects_xy``: a point on the boundary counts as inside). A polygon's edges are straight
lines in the CRS it is drawn in, and only there; reprojecting the polygon instead, to each UTM
zone or to EPSG:4326, bends every edge (a straight edge in EPSG:3857 or in a UTM zone is a curve
in lon/lat and in the other zones), so the polygon would have to be densified and would still be
approximate. Transforming points is exact for any CRS, needs no densifying, treats images of
every UTM zone alike (an area crossing a zone boundary is one polygon in one CRS), and costs one
vectorised pyproj call per million images. An image whose position the area's CRS cannot
represent (a non-finite result, e.g. far outside a local projection's domain) is outside.
Images without ``lat``/``lon`` are neither inside nor outside (:attr:`SplitResult.notes` counts
them). In a geographic CRS the images' longitudes are in -180..180, so an area crossing the
antimeridian must be given as two polygons split there.

Storage: a table macro cannot hold a polygon, so the membership is computed once and stored:
``<catalog>/areas/<name>.parquet`` (one column ``image_id``; key-value metadata
``vgdata.area`` = JSON with the area file's path, sha256 and CRS, ``outside``, the collection and
its fingerprint). The split's build.json entry is ``{"macro": "area_split", "args": {"area":
<name>, "coll", "fingerprint", "outside", "area_sha256"}, "views": {<name>: {}}}``
(``vgdata/sql/splits/area_split.sql``). **Never silently stale**: when the collection is built
again (its fingerprint in build.json changes), reading the view fails with "area split ... is
stale"; :func:`area_split_status` lists stale area splits (the collection changed, the
membership file is missing, or the area file now has another sha256) for ``vgdata check``. Run
``split-area`` again with the same name to refresh it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vgdata.catalog import Catalog, writer_lock
from vgdata.errors import UsageError
from vgdata.fsio import atomic_write_table
from vgdata.splits import SplitResult, check_view_names, probe_connection, store_split
from vgdata.views import check_name, split_view_statements

AREAS_DIR = "areas"
"""Folder of the catalog holding the membership files of area splits."""
MACRO = "area_split"
_BATCH = 1_000_000


def split_area(
    catalog: str | os.PathLike[str],
    *,
    name: str,
    within: str | os.PathLike[str],
    layer: str | None = None,
    outside: bool = False,
    collection: str = "database",
    wait: bool = True,
) -> SplitResult:
    """Define view ``<name>``: the images of ``collection`` inside the area of ``within`` (outside with ``outside``).

    ``within``: a vector file (GeoJSON, GeoPackage, ...) with one or more polygons in any CRS;
    ``layer``: its layer (needed when the file has several). Defining an existing split name again
    replaces that split. Raises :class:`UsageError` (one line) for a missing or unreadable file, a
    file without a CRS or without polygons, and an empty result.
    """
    cat = Catalog(catalog)
    cat.require()
    check_name(name, "split name")
    area, info = read_area(within, layer)
    with writer_lock(cat.root, task=f"define area split {name!r}", wait=wait):
        build = cat.require()
        check_name(collection, "collection")
        if collection not in build["collections"]:
            raise UsageError(
                f"no collection {collection!r} in {cat.root}; use one of: {', '.join(sorted(build['collections']))}"
            )
        fingerprint = build["collections"][collection]["fingerprint"]
        definition = {
            "macro": MACRO,
            "args": {
                "area": name,
                "coll": collection,
                "fingerprint": fingerprint,
                "outside": int(outside),
                "area_sha256": info["sha256"],
            },
            "views": {name: {}},
        }
        con = probe_connection(cat)
        try:
            check_view_names(con, build, name, [name])
            chosen, without_position = _choose(con, collection, area, info["crs"], outside)
            side = "outside" if outside else "inside"
            if len(chosen) == 0:
                raise UsageError(
                    f"split {name!r}: no image of collection {collection!r} lies {side} the area of {within} "
                    f"(area bounds lon/lat {_lonlat_bounds(area, info['crs'])}); check the file and its CRS"
                )
            _write_members(
                cat, name, chosen, {**info, "outside": outside, "collection": collection, "fingerprint": fingerprint}
            )
            for statement in split_view_statements({name: definition}):
                con.execute(statement)
            count = con.sql(f'select count(*) from "{name}"').fetchall()[0][0]
        finally:
            con.close()
        store_split(cat, name, definition)
    notes = [f"images {side} the area of {within} ({info['polygons']} polygon(s), CRS {info['crs_name']})"]
    if info["ignored"]:
        notes.append(f"{info['ignored']} features of {within} are not polygons and were ignored")
    if without_position:
        notes.append(f"{without_position} images of {collection!r} have no lat/lon: neither inside nor outside")
    params = {"within": str(within), "layer": layer, "outside": outside, "collection": collection, **info}
    params.pop("crs")
    return SplitResult(name, "area", params, {name: count}, notes)


def read_area(path: str | os.PathLike[str], layer: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The union of the polygons of a vector file and ``{"sha256", "crs", "crs_name", "polygons", "ignored", "path"}``.

    ``crs`` is the file's CRS as WKT. One-line :class:`UsageError` for a missing or unreadable file,
    several layers without ``layer``, no CRS, or no polygon.
    """
    from vgdata.export_geo import require_geopandas

    geopandas = require_geopandas()
    import pyogrio
    import shapely

    path = Path(path)
    if not path.exists():
        raise UsageError(f"no area file {path}; give a GeoJSON or GeoPackage with polygons")
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as e:  # pyogrio's DataSourceError and friends: a file GDAL cannot open
        raise UsageError(f"cannot read {path} as a vector file: {_first_line(e)}") from None
    if layer is None and len(layers) > 1:
        raise UsageError(f"{path} has {len(layers)} layers ({', '.join(layers)}); choose one with --layer")
    if layer is not None and layer not in layers:
        raise UsageError(f"{path} has no layer {layer!r}; it has: {', '.join(layers)}")
    try:
        frame = geopandas.read_file(path, layer=layer)
    except Exception as e:
        raise UsageError(f"cannot read {path}: {_first_line(e)}") from None
    if frame.crs is None:
        raise UsageError(f"{path} declares no CRS; set one (e.g. ogr2ogr -a_srs EPSG:4326) and run again")
    geoms = frame.geometry[frame.geometry.notna() & ~frame.geometry.is_empty]
    polygonal = geoms[geoms.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(polygonal) == 0:
        raise UsageError(f"{path} has no polygon (found: {', '.join(sorted(set(geoms.geom_type))) or 'nothing'})")
    area = shapely.union_all(shapely.make_valid(polygonal.to_numpy()))
    shapely.prepare(area)
    info = {
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else _dir_sha256(path),
        "crs": frame.crs.to_wkt(),
        "crs_name": frame.crs.to_string(),
        "polygons": len(polygonal),
        "ignored": len(geoms) - len(polygonal),
    }
    return area, info


def _choose(con: Any, collection: str, area: Any, crs_wkt: str, outside: bool) -> tuple[Any, int]:
    """image_ids of ``collection`` inside (or outside) ``area`` (points transformed to the area's CRS), and the
    number of images without lat/lon."""
    import numpy as np
    import pyproj
    import shapely

    transformer = pyproj.Transformer.from_crs("EPSG:4326", pyproj.CRS.from_wkt(crs_wkt), always_xy=True)
    reader = con.sql(
        "select image_id, lon, lat from images where collection = $coll", params={"coll": collection}
    ).to_arrow_reader(_BATCH)
    chosen, without_position = [], 0
    for batch in reader:
        ids = batch.column(0).to_numpy(zero_copy_only=False)
        lon = batch.column(1).to_numpy(zero_copy_only=False).astype(np.float64)
        lat = batch.column(2).to_numpy(zero_copy_only=False).astype(np.float64)
        located = np.isfinite(lon) & np.isfinite(lat)
        without_position += int((~located).sum())
        x, y = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
        if located.any():
            x[located], y[located] = transformer.transform(lon[located], lat[located], errcheck=False)
        representable = np.isfinite(x) & np.isfinite(y)
        inside = np.zeros(len(ids), dtype=bool)
        inside[representable] = shapely.intersects_xy(area, x[representable], y[representable])
        keep = (located & ~inside) if outside else inside
        chosen.append(ids[keep])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64), without_position


def _write_members(cat: Catalog, name: str, ids: Any, meta: dict[str, Any]) -> None:
    import pyarrow as pa

    table = pa.table({"image_id": pa.array(ids, type=pa.int64())})
    atomic_write_table(members_path(cat, name), table, {"vgdata.area": json.dumps(meta, sort_keys=True)})


def members_path(cat: Catalog, name: str) -> Path:
    """``<catalog>/areas/<name>.parquet``: the image_ids an area split chose."""
    return cat.root / AREAS_DIR / f"{name}.parquet"


def area_split_status(catalog: str | os.PathLike[str]) -> list[str]:
    """One line per stale area split of a catalog (empty when all are current).

    Stale: the collection's fingerprint differs from the one the membership was computed on, the
    membership file is missing, or the area file (when still at its recorded path) has another sha256.
    """
    import pyarrow.parquet as pq

    cat = Catalog(catalog)
    build = cat.require()
    problems = []
    for name, split in sorted(build.get("splits", {}).items()):
        if not isinstance(split, dict) or split.get("macro") != MACRO:
            continue
        args = split.get("args", {})
        coll = args.get("coll", "database")
        current = build["collections"].get(coll, {}).get("fingerprint")
        path = members_path(cat, args.get("area", name))
        if current != args.get("fingerprint"):
            problems.append(f"area split {name!r} is stale: collection {coll!r} changed; run split-area again")
        elif not path.is_file():
            problems.append(f"area split {name!r} has lost its membership file {path}; run split-area again")
        else:
            meta = json.loads((pq.read_schema(path).metadata or {}).get(b"vgdata.area", b"{}"))
            area_file = Path(meta.get("path", ""))
            if area_file.is_file() and hashlib.sha256(area_file.read_bytes()).hexdigest() != args.get("area_sha256"):
                problems.append(f"area split {name!r}: its area file {area_file} has changed; run split-area again")
    return problems


def _lonlat_bounds(area: Any, crs_wkt: str) -> str:
    import pyproj

    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)
    west, south, east, north = transformer.transform_bounds(*area.bounds, densify_pts=21)
    return f"{west:.5f}, {south:.5f}, {east:.5f}, {north:.5f}"


def _dir_sha256(path: Path) -> str:
    """sha256 over the files of a folder-shaped dataset (e.g. a FileGDB), in name order."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
