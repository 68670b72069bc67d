"""``vgdata export --format geoparquet``: GeoParquet 1.1 read back with geopandas (and GDAL where it can).

Two catalogs: the tiny city (``tiny_catalog``: crops and panoramas in zone 10S, and a groups
manifest for the class polygons), and a generated one over UTM zones 10 and 11 with rows without a
position and dataset attributes (an ``attributes`` part with a dataset column of its own).
Expected values come from the catalog read with DuckDB, shapely, pyproj and numpy, never from the
exporter.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from typer.testing import CliRunner

geopandas = pytest.importorskip("geopandas")
pyproj = pytest.importorskip("pyproj")

from cli import vgdata_app  # noqa: E402
from vgdata.build import register_collection  # noqa: E402
from vgdata.catalog import Catalog  # noqa: E402
from vgdata.errors import UsageError  # noqa: E402
from vgdata.export_geo import export_geoparquet  # noqa: E402
from vgdata.schema import ATTRIBUTES, IMAGES, from_columns  # noqa: E402

runner = CliRunner()


def _catalog_table(cat, sql: str) -> pa.Table:
    con = Catalog(cat).connect()
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _check_points(path, expected: pa.Table, key: list[str]) -> None:
    """The file at ``path`` against the catalog rows ``expected``: columns, values, geometry, CRS, metadata, order."""
    gdf = geopandas.read_parquet(path)
    assert gdf.crs.to_epsg() == 4326
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert pq.read_schema(path).field("bbox").type == pa.struct(
        [(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")]
    )
    # every catalog column, equal values (rows matched on the key)
    got = pq.read_table(path, columns=expected.column_names)
    assert got.num_rows == expected.num_rows
    order = [(k, "ascending") for k in key]
    got, want = got.sort_by(order), expected.sort_by(order)
    for name in expected.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    # geometry = Point(lon, lat) per row, null where there is no position
    lon = gdf["lon"].to_numpy(dtype=float, na_value=np.nan)
    lat = gdf["lat"].to_numpy(dtype=float, na_value=np.nan)
    located = np.isfinite(lon) & np.isfinite(lat)
    assert gdf.geometry.isna().to_numpy().tolist() == (~located).tolist()
    assert np.array_equal(shapely.get_x(gdf.geometry[located].to_numpy()), lon[located])
    assert np.array_equal(shapely.get_y(gdf.geometry[located].to_numpy()), lat[located])
    # Hilbert order over the file's total bounds: positioned rows first, distances non-decreasing
    n = int(located.sum())
    assert located[:n].all() and not located[n:].any()
    points = geopandas.GeoSeries(geopandas.points_from_xy(lon[:n], lat[:n]))
    distance = points.hilbert_distance(total_bounds=gdf.total_bounds).to_numpy()
    assert (np.diff(distance) >= 0).all()


def _row_group_boxes(path) -> list[tuple[float, float, float, float]]:
    """(xmin, ymin, xmax, ymax) of each row group, from the Parquet statistics of the bbox columns."""
    meta = pq.read_metadata(path)
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    boxes = []
    for g in range(meta.num_row_groups):
        stats = {names[i]: meta.row_group(g).column(i).statistics for i in range(meta.num_columns)}
        boxes.append((stats["bbox.xmin"].min, stats["bbox.ymin"].min, stats["bbox.xmax"].max, stats["bbox.ymax"].max))
    return boxes


def test_tiny_city_round_trip_with_classes(tiny_catalog, tmp_path):
    from vgdata.groups import GroupsConfig, split_groups

    manifest = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2)).manifest
    out = tmp_path / "geo"
    r = export_geoparquet(tiny_catalog, out, classes=manifest, row_group_size=32)
    _check_points(out / "images.parquet", _catalog_table(tiny_catalog, "select * from images"), ["image_id"])
    panoramas = _catalog_table(tiny_catalog, "select * from panoramas")
    assert panoramas.num_rows > 0
    _check_points(out / "panoramas.parquet", panoramas, ["collection", "pano_id"])
    assert r.files["images.parquet"] == _catalog_table(tiny_catalog, "select * from images").num_rows

    # row groups: several, each covering a part of the area (what lets a bbox filter skip the others)
    boxes = _row_group_boxes(out / "images.parquet")
    assert len(boxes) == pq.read_metadata(out / "images.parquet").num_row_groups >= 4
    xmin, ymin, xmax, ymax = geopandas.read_parquet(out / "images.parquet").total_bounds
    total = (xmax - xmin) * (ymax - ymin)
    assert np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]) < 0.5 * total

    # classes: M x M squares in the zone's CRS, one row per class, containing their images' UTM points
    rows = pq.read_table(manifest).to_pylist()
    params = json.loads(pq.read_schema(manifest).metadata[b"vgdata.params"])
    zones = {row["utm_epsg"] for row in rows}
    assert zones == {32610}
    classes = geopandas.read_parquet(out / "classes_32610.parquet")
    assert classes.crs.to_epsg() == 32610
    assert json.loads(pq.read_metadata(out / "classes_32610.parquet").metadata[b"geo"])["version"] == "1.1.0"
    keys = sorted({(row["group_rank"], row["class_index"]) for row in rows})  # class_index counts within a group
    assert sorted(zip(classes["group_rank"], classes["class_index"], strict=True)) == keys
    assert np.allclose(classes.geometry.area, params["M"] ** 2)
    by_class = classes.set_index(["group_rank", "class_index"])
    counts = {}
    for row in rows:
        key = (row["group_rank"], row["class_index"])
        cls = by_class.loc[key]
        assert cls.geometry.covers(shapely.Point(row["utm_east"], row["utm_north"]))
        assert cls["heading_from"] <= row["heading"] % 360 < cls["heading_to"]
        counts[key] = counts.get(key, 0) + 1
    assert by_class["images"].to_dict() == counts
    groups = geopandas.read_parquet(out / "groups_32610.parquet")
    assert sorted(groups["group_rank"]) == sorted({row["group_rank"] for row in rows})
    for _, group in groups.iterrows():
        mine = classes[classes["group_rank"] == group["group_rank"]]
        assert group.geometry.equals(shapely.union_all(mine.geometry.to_numpy()))
        assert group["classes"] == len(mine) and group["images"] == mine["images"].sum()


def _generated_catalog(cat) -> None:
    """60 images over zones 10 and 11 (4 without a position), with attributes for half of them."""
    rng = np.random.default_rng(3)
    n = 60
    lon = rng.uniform(-123.5, -117.0, n)
    lat = rng.uniform(36.0, 39.5, n)
    zones = (np.floor((lon + 180) / 6) + 1).astype(int)
    east, north = np.empty(n), np.empty(n)
    for z in set(zones.tolist()):
        sel = zones == z
        east[sel], north[sel] = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{32600 + z}", always_xy=True).transform(
            lon[sel], lat[sel]
        )
    lost = [3, 17, 30, 44]
    pos = lambda values: [None if i in lost else float(v) for i, v in enumerate(values)]  # noqa: E731
    rows = {
        "image_id": list(range(500, 500 + n)),
        "path": [f"g/{i:03d}.jpg" for i in range(n)],
        "collection": ["database"] * n,
        "lat": pos(lat),
        "lon": pos(lon),
        "utm_east": pos(east),
        "utm_north": pos(north),
        "utm_zone": [None if i in lost else int(z) for i, z in enumerate(zones)],
        "utm_letter": [None if i in lost else "S" for i in range(n)],
        "heading": rng.uniform(0, 360, n).tolist(),
        "year": [2010 + i % 8 for i in range(n)],
    }
    (cat / "images").mkdir(parents=True)
    pq.write_table(from_columns(IMAGES, rows), cat / "images" / "database-00000.parquet")
    half = list(range(0, n, 2))
    attributes = from_columns(
        ATTRIBUTES,
        {
            "image_id": [500 + i for i in half],
            "collection": ["database"] * len(half),
            "dataset": ["demo"] * len(half),
            "city": [f"c{i % 3}" for i in half],
            "night": [i % 4 == 0 for i in half],
        },
    ).append_column("demo_score", pa.array([i / 7 for i in half]))
    (cat / "attributes").mkdir()
    pq.write_table(attributes, cat / "attributes" / "database-00000.parquet")
    register_collection(cat, "database", image_root=str(cat), source={"kind": "generated"})


def test_attributes_nulls_and_two_zones_through_the_cli(tmp_path):
    cat = tmp_path / "cat"
    _generated_catalog(cat)
    out = tmp_path / "geo"
    res = runner.invoke(vgdata_app, ["export", str(cat), str(out), "--format", "geoparquet", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["files"] == {"images.parquet": 60} and r["without_position"] == {"images.parquet": 4}
    assert not (out / "panoramas.parquet").exists()  # generated rows have no panoramas
    expected = _catalog_table(cat, "select * from images left join attributes using (image_id, collection)")
    assert {"dataset", "city", "night", "demo_score", "utm_east", "utm_zone", "utm_epsg"} <= set(expected.column_names)
    _check_points(out / "images.parquet", expected, ["image_id"])
    gdf = geopandas.read_parquet(out / "images.parquet")
    assert set(gdf["utm_zone"].dropna().astype(int)) == {10, 11}


def test_errors_are_one_line(tiny_catalog, tmp_path):
    with pytest.raises(UsageError, match="no groups manifest"):
        export_geoparquet(tiny_catalog, tmp_path / "a", classes="nope.parquet")
    with pytest.raises(UsageError, match="not a Parquet file"):
        export_geoparquet(tiny_catalog, tmp_path / "a", classes=tiny_catalog / "build.json")
    eval_like = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}).replace_schema_metadata({"vgdata.kind": "eval"}), eval_like)
    with pytest.raises(UsageError, match="not a groups manifest"):
        export_geoparquet(tiny_catalog, tmp_path / "a", classes=eval_like)
    assert not (tmp_path / "a").exists()  # refused before anything is written
    with pytest.raises(UsageError, match="inside the catalog"):
        export_geoparquet(tiny_catalog, tiny_catalog / "geo")
    res = runner.invoke(vgdata_app, ["export", str(tiny_catalog), str(tmp_path / "b"), "--classes", "x.parquet"])
    assert res.exit_code == 2 and "--classes goes with --format geoparquet" in res.output


def test_gdal_reads_it_where_it_has_a_parquet_driver(tiny_catalog, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    if "Parquet" not in pyogrio.list_drivers():
        pytest.skip(f"pyogrio's bundled GDAL {pyogrio.__gdal_version_string__} has no Parquet driver")
    out = tmp_path / "geo"
    export_geoparquet(tiny_catalog, out)
    frame = pyogrio.read_dataframe(out / "images.parquet")
    assert frame.crs.to_epsg() == 4326
    assert len(frame) == len(geopandas.read_parquet(out / "images.parquet"))
