"""``vgdata export --format geoparquet``: the catalog as GeoParquet 1.1 for GIS tools.

Files written under ``DEST`` (geopandas, WKB geometry, zstd):

* ``images.parquet``: one row per image of the chosen collections (default all), with every
  column of ``images`` (``lat``/``lon`` in WGS84 degrees and the UTM columns kept as plain
  columns) and, when the catalog has dataset attributes (``attributes``, native ``--from``
  imports), their columns joined on ``image_id`` and ``collection``; plus ``geometry`` =
  ``Point(lon, lat)`` in EPSG:4326 (OGC:CRS84 axis order: x = longitude, y = latitude).
* ``panoramas.parquet``: the same for ``panoramas``, written only when the collections have any.
* with ``classes=GROUPS_MANIFEST`` (a manifest of ``vgdata split-groups``): CosPlace's classes as
  polygons, the M x M metre UTM cell of each class (one row per class: ``group_rank``,
  ``class_index`` (its index within the group, as in the manifest), ``class_e/n/h``, ``group_e/n/h``, ``heading_from``/``heading_to`` (its heading
  bin, degrees), ``images``) in the CRS of its own UTM zone, **one file per zone**:
  ``classes_<epsg>.parquet`` (``classes_32610.parquet`` for San Francisco), never reprojected, so
  each square stays exactly M x M metres. ``groups_<epsg>.parquet`` holds each group's cells in
  that zone dissolved into one (multi)polygon (``group_rank``, ``group_e/n/h``, ``classes``,
  ``images``). A class without a zone (no ``utm_epsg``) has no CRS and is counted in
  :attr:`GeoExportResult.classes_without_zone`, not written.

Rows without ``lat``/``lon`` are kept, with a null geometry (GeoParquet allows it), sorted after
the others and counted in :attr:`GeoExportResult.without_position`.

Metadata: the ``geo`` key of GeoParquet 1.1.0 (``schema_version="1.1.0"``) with the CRS as
PROJJSON, and a covering ``bbox`` struct column (``xmin, ymin, xmax, ymax`` per row,
``write_covering_bbox=True``) declared in ``geo.columns.geometry.covering``.

Spatial order: the rows of each file are sorted by the Hilbert distance of their geometry
(:meth:`geopandas.GeoSeries.hilbert_distance`, level 16, over the file's own total bounds; ties
by ``image_id``) and written in row groups of ``row_group_size`` rows (default 100,000). Nearby
rows thus share a row group, and each row group's min/max statistics of ``bbox.xmin`` ..
``bbox.ymax`` cover a small area: a reader with a bbox filter (GDAL >= 3.9, DuckDB, pyarrow
filters on ``bbox``) skips the row groups outside it without reading them.

The export holds one table in memory at a time (pandas with Arrow types, so integer columns with
nulls keep their type). geopandas is an extra: ``pip install 'vgdata[gis]'``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgdata.catalog import Catalog, _sql_literal
from vgdata.errors import UsageError
from vgdata.export_gt import check_dest_outside
from vgdata.fsio import atomic_path

ROW_GROUP_SIZE = 100_000
"""Rows per row group of the GeoParquet files (with the Hilbert order, the unit a bbox filter skips)."""
GEO_VERSION = "1.1.0"
"""The GeoParquet version written."""
_CLASS_COLUMNS = (
    "group_rank",
    "class_index",
    "utm_epsg",
    "class_e",
    "class_n",
    "class_h",
    "group_e",
    "group_n",
    "group_h",
)


@dataclass
class GeoExportResult:
    """What ``export --format geoparquet`` wrote."""

    dest: str
    files: dict[str, int] = field(default_factory=dict)
    """File name -> rows written."""
    without_position: dict[str, int] = field(default_factory=dict)
    """File name -> rows kept with a null geometry (no lat/lon)."""
    classes_without_zone: int = 0
    """Classes of the groups manifest without a UTM zone (not written: no CRS)."""


def require_geopandas(extra: str = "gis") -> Any:
    """The geopandas module, or a one-line :class:`UsageError` naming the extra to install."""
    try:
        import geopandas
    except ImportError:
        raise UsageError(f"this needs geopandas: pip install 'vgdata[{extra}]'") from None
    return geopandas


def export_geoparquet(
    catalog: str | Path,
    dest: str | Path,
    *,
    collections: list[str] | None = None,
    classes: str | Path | None = None,
    row_group_size: int = ROW_GROUP_SIZE,
) -> GeoExportResult:
    """Write ``images.parquet``, ``panoramas.parquet`` (and the class files of ``classes``) under ``dest``.

    ``collections``: the collections to export (default all); ``classes``: a groups manifest (a
    path, or a file name under the catalog's ``manifests/``); ``row_group_size``: rows per row
    group. See the module docstring for the files and their order.
    """
    require_geopandas()
    if isinstance(row_group_size, bool) or not isinstance(row_group_size, int) or row_group_size < 1:
        raise UsageError(f"row_group_size must be a whole number >= 1, got {row_group_size!r}")
    cat = Catalog(catalog)
    build = cat.require()
    wanted = list(collections or sorted(build["collections"]))
    unknown = [c for c in wanted if c not in build["collections"]]
    if unknown:
        raise UsageError(f"no collection {', '.join(unknown)} in {cat.root}; have {', '.join(build['collections'])}")
    manifest = None if classes is None else _manifest_path(cat, classes)
    dest = Path(dest)
    check_dest_outside(cat.root, dest)
    result = GeoExportResult(dest=str(dest))
    in_list = ", ".join(f"'{_sql_literal(c)}'" for c in wanted)
    con = cat.connect()
    try:
        has_attributes = con.sql("select count(*) from attributes").fetchall()[0][0] > 0
        if has_attributes:
            images_sql = (
                "select * from images left join attributes using (image_id, collection) "
                f"where collection in ({in_list})"
            )
        else:
            images_sql = f"select * from images where collection in ({in_list})"
        images = con.sql(images_sql).to_arrow_table()
        panoramas = con.sql(f"select * from panoramas where collection in ({in_list})").to_arrow_table()
    finally:
        con.close()
    _write_points(images, dest / "images.parquet", ("image_id",), row_group_size, result)
    if panoramas.num_rows:
        _write_points(panoramas, dest / "panoramas.parquet", ("collection", "pano_id"), row_group_size, result)
    if manifest is not None:
        _write_classes(manifest, dest, row_group_size, result)
    return result


def _manifest_path(cat: Catalog, classes: str | Path) -> Path:
    """The groups manifest named by ``classes``: a path, or a file (with or without .parquet) in manifests/."""
    path = Path(classes)
    candidates = [path, cat.manifests_dir / path.name, cat.manifests_dir / f"{path.name}.parquet"]
    for candidate in candidates:
        if candidate.is_file():
            return _check_groups_manifest(candidate)
    raise UsageError(f"no groups manifest {classes} (nor in {cat.manifests_dir}); run `vgdata split-groups` first")


def _check_groups_manifest(path: Path) -> Path:
    """``path`` if it is a Parquet file of kind ``groups`` (written by split-groups); a one-line error otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"--classes {path} is not a Parquet file ({_first_line(e)}); give a groups manifest") from None
    kind = meta.get(b"vgdata.kind", b"").decode()
    if kind != "groups":
        raise UsageError(f"{path} is not a groups manifest (kind {kind or 'unknown'!r}); run `vgdata split-groups`")
    return path


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _hilbert_sorted(gdf: Any, tie_columns: tuple[str, ...]) -> Any:
    """``gdf`` sorted by Hilbert distance (over its non-null geometries' total bounds), then ``tie_columns``;
    rows with a null geometry last."""
    import numpy as np
    import pandas as pd

    valid = gdf.geometry.notna().to_numpy() & ~gdf.geometry.is_empty.to_numpy()
    distance = np.full(len(gdf), np.iinfo(np.int64).max, dtype=np.int64)
    if valid.any():
        distance[valid] = gdf.geometry[valid].hilbert_distance().to_numpy()
    keys = pd.DataFrame({"_hilbert": distance, **{c: gdf[c].to_numpy() for c in tie_columns}})
    order = keys.sort_values(["_hilbert", *tie_columns], kind="stable", na_position="last").index.to_numpy()
    return gdf.iloc[order].reset_index(drop=True)


def _write_points(
    table: Any, path: Path, tie_columns: tuple[str, ...], row_group_size: int, result: GeoExportResult
) -> None:
    """One point table (images or panoramas) as GeoParquet: Point(lon, lat) in EPSG:4326, Hilbert order."""
    import numpy as np
    import pandas as pd

    geopandas = require_geopandas()
    df = table.to_pandas(types_mapper=pd.ArrowDtype)
    lon = df["lon"].to_numpy(dtype=np.float64, na_value=np.nan)
    lat = df["lat"].to_numpy(dtype=np.float64, na_value=np.nan)
    located = np.isfinite(lon) & np.isfinite(lat)
    points = geopandas.points_from_xy(lon, lat, crs="EPSG:4326")
    geometry = geopandas.GeoSeries(points, crs="EPSG:4326")
    geometry[~located] = None
    gdf = geopandas.GeoDataFrame(df, geometry=geometry, crs="EPSG:4326")
    gdf = _hilbert_sorted(gdf, tie_columns)
    _to_geoparquet(gdf, path, row_group_size)
    result.files[path.name] = len(gdf)
    result.without_position[path.name] = int((~located).sum())


def _to_geoparquet(gdf: Any, path: Path, row_group_size: int) -> None:
    with atomic_path(path) as tmp:
        gdf.to_parquet(
            tmp,
            index=False,
            compression="zstd",
            schema_version=GEO_VERSION,
            write_covering_bbox=True,
            row_group_size=row_group_size,
        )


def _write_classes(manifest: Path, dest: Path, row_group_size: int, result: GeoExportResult) -> None:
    """``classes_<epsg>.parquet`` and ``groups_<epsg>.parquet`` per UTM zone of a groups manifest."""
    import pandas as pd
    import pyarrow.parquet as pq
    import shapely

    geopandas = require_geopandas()
    meta = pq.read_schema(manifest).metadata or {}
    params = json.loads(meta.get(b"vgdata.params", b"{}").decode())
    m, alpha = float(params["M"]), float(params["alpha"])
    df = pq.read_table(manifest, columns=list(_CLASS_COLUMNS)).to_pandas()
    keys = ["utm_epsg", "group_rank", "class_index"]  # class_index counts within a group
    no_zone = df["utm_epsg"].isna()
    result.classes_without_zone = len(df.loc[no_zone, ["group_rank", "class_index"]].drop_duplicates())
    df = df[~no_zone]
    cells = (
        df.groupby(keys, sort=True)
        .agg(**{c: (c, "first") for c in _CLASS_COLUMNS if c not in keys}, images=("class_index", "size"))
        .reset_index()
    )
    cells["heading_from"] = cells["class_h"] * alpha
    cells["heading_to"] = (cells["class_h"] + 1) * alpha
    for epsg, zone in cells.groupby("utm_epsg", sort=True):
        zone = zone.drop(columns="utm_epsg").reset_index(drop=True)
        east, north = zone["class_e"].to_numpy() * m, zone["class_n"].to_numpy() * m
        squares = shapely.box(east, north, east + m, north + m)
        crs = f"EPSG:{int(epsg)}"
        gdf = geopandas.GeoDataFrame(zone.astype({"images": "int64"}), geometry=squares, crs=crs)
        gdf["utm_epsg"] = pd.Series(int(epsg), index=gdf.index, dtype="int32")
        gdf = _hilbert_sorted(gdf, ("group_rank", "class_index"))
        name = f"classes_{int(epsg)}.parquet"
        _to_geoparquet(gdf, dest / name, row_group_size)
        result.files[name] = len(gdf)
        groups = gdf.dissolve(
            by="group_rank",
            aggfunc={
                "group_e": "first",
                "group_n": "first",
                "group_h": "first",
                "class_index": "count",
                "images": "sum",
            },
        ).reset_index()
        groups = groups.rename(columns={"class_index": "classes"})
        groups = _hilbert_sorted(groups, ("group_rank",))
        name = f"groups_{int(epsg)}.parquet"
        _to_geoparquet(groups, dest / name, row_group_size)
        result.files[name] = len(groups)
