"""``vgdata split-area``: images inside / outside a polygon of a vector file in any CRS, across UTM zones.

The catalog holds generated rows (``register_collection``) scattered over lon -127..-117, lat 38..46:
UTM zones 10 (-126..-120) and 11 (-120..-114) and a strip of zone 9. The area is a hand-made
pentagon drawn in EPSG:3857 (web Mercator) that crosses the zone 10 / zone 11 boundary at lon -120.
The expected membership is computed here without vgdata: the pentagon's edges densified in EPSG:3857
(shapely.segmentize), its vertices reprojected to lon/lat with pyproj, and shapely's point-in-polygon
on each image's lon/lat; points closer than 0.02 degree to the boundary are not generated, so the
densifying error (metres) cannot flip one.
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from typer.testing import CliRunner

geopandas = pytest.importorskip("geopandas")
pyproj = pytest.importorskip("pyproj")

from cli import vgdata_app  # noqa: E402
from vgdata.areas import area_split_status, members_path, split_area  # noqa: E402
from vgdata.build import register_collection  # noqa: E402
from vgdata.catalog import Catalog  # noqa: E402
from vgdata.errors import UsageError  # noqa: E402
from vgdata.schema import IMAGES, from_columns  # noqa: E402

runner = CliRunner()
PENTAGON_LONLAT = [(-124.5, 39.5), (-118.8, 39.2), (-118.2, 43.0), (-121.0, 45.0), (-125.0, 43.5)]
"""Corners of the area, lon/lat degrees; the polygon itself is the straight-edged pentagon through their
EPSG:3857 images (so its edges are curves in lon/lat)."""


def _area_3857() -> shapely.Polygon:
    to_merc = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x, y = to_merc.transform(*np.array(PENTAGON_LONLAT).T)
    return shapely.Polygon(np.column_stack([x, y]))


def _area_lonlat() -> shapely.Polygon:
    """The EPSG:3857 pentagon in lon/lat, edges densified to 500 m before reprojecting (pyproj directly)."""
    dense = shapely.segmentize(_area_3857(), max_segment_length=500.0)
    to_lonlat = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    coords = np.asarray(dense.exterior.coords)
    lon, lat = to_lonlat.transform(coords[:, 0], coords[:, 1])
    return shapely.Polygon(np.column_stack([lon, lat]))


def _rows(seed: int, n: int) -> dict[str, list]:
    """``n`` images scattered over lon -127..-117, lat 38..46 (none within 0.02 degree of the area's edge),
    with UTM columns from pyproj, plus two images without a position."""
    rng = np.random.default_rng(seed)
    boundary = _area_lonlat().exterior
    lon, lat = [], []
    while len(lon) < n:
        x, y = rng.uniform(-127, -117), rng.uniform(38, 46)
        if shapely.distance(boundary, shapely.Point(x, y)) > 0.02:
            lon.append(x)
            lat.append(y)
    zones = [int((x + 180) // 6) + 1 for x in lon]
    east, north = [], []
    to_utm = {z: pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{32600 + z}", always_xy=True) for z in set(zones)}
    for x, y, z in zip(lon, lat, zones, strict=True):
        e, nn = to_utm[z].transform(x, y)
        east.append(e)
        north.append(nn)
    m = n + 2
    return {
        "image_id": list(range(1000 + seed * 10000, 1000 + seed * 10000 + m)),
        "path": [f"img_{i:05d}.jpg" for i in range(m)],
        "collection": ["database"] * m,
        "lat": [*lat, None, None],
        "lon": [*lon, None, None],
        "utm_east": [*east, None, None],
        "utm_north": [*north, None, None],
        "utm_zone": [*zones, None, None],
        "utm_letter": [("S" if y < 40 else "T") for y in lat] + [None, None],
        "year": [2015] * m,
    }


def _write_collection(cat, seed: int, n: int) -> dict[str, list]:
    rows = _rows(seed, n)
    (cat / "images").mkdir(parents=True, exist_ok=True)
    pq.write_table(from_columns(IMAGES, rows), cat / "images" / "database-00000.parquet")
    register_collection(cat, "database", image_root=str(cat), source={"kind": "generated"})
    return rows


@pytest.fixture(scope="module")
def zone_catalog(tmp_path_factory):
    """A catalog of 300 generated images over zones 9-11 and the area file (GeoPackage, EPSG:3857)."""
    root = tmp_path_factory.mktemp("area")
    cat = root / "cat"
    rows = _write_collection(cat, 0, 300)
    gpkg = root / "area.gpkg"
    geopandas.GeoDataFrame({"name": ["pentagon"]}, geometry=[_area_3857()], crs="EPSG:3857").to_file(
        gpkg, layer="areas"
    )
    return cat, gpkg, rows


def _expected(rows: dict[str, list]) -> tuple[set[int], set[int]]:
    """(inside, outside) image_ids by shapely point-in-polygon on lon/lat; rows without lon/lat in neither."""
    area = _area_lonlat()
    inside, outside = set(), set()
    for image_id, lon, lat in zip(rows["image_id"], rows["lon"], rows["lat"], strict=True):
        if lon is None:
            continue
        (inside if area.contains(shapely.Point(lon, lat)) else outside).add(image_id)
    return inside, outside


def _view_ids(cat, view: str) -> set[int]:
    con = Catalog(cat).connect()
    try:
        return {r[0] for r in con.sql(f'select image_id from "{view}"').fetchall()}
    finally:
        con.close()


def test_split_area_selects_what_shapely_selects_across_a_zone_boundary(zone_catalog):
    cat, gpkg, rows = zone_catalog
    inside, outside = _expected(rows)
    zone_of = dict(zip(rows["image_id"], rows["utm_zone"], strict=True))
    assert {zone_of[i] for i in inside} == {10, 11}  # the area really spans the boundary
    assert len(inside) > 20 and len(outside) > 20

    r = split_area(cat, name="centre", within=gpkg)
    assert _view_ids(cat, "centre") == inside
    assert r.counts == {"centre": len(inside)}
    assert any("2 images" in note and "no lat/lon" in note for note in r.notes)

    res = runner.invoke(vgdata_app, ["split-area", str(cat), "--name", "rest", "--within", str(gpkg), "--outside"])
    assert res.exit_code == 0, res.output
    assert _view_ids(cat, "rest") == outside
    build = json.loads((cat / "build.json").read_text())
    assert build["splits"]["rest"]["macro"] == "area_split"
    args = build["splits"]["rest"]["args"]
    assert args["area_sha256"] == hashlib.sha256(gpkg.read_bytes()).hexdigest()
    assert args["fingerprint"] == build["collections"]["database"]["fingerprint"] and args["outside"] == 1
    meta = json.loads(pq.read_schema(members_path(Catalog(cat), "rest")).metadata[b"vgdata.area"])
    assert meta["outside"] is True and meta["sha256"] == args["area_sha256"]
    assert Catalog(cat).set_sql("centre") == 'select * from "centre"'  # a set name like any split view
    assert area_split_status(cat) == []

    from vgdata.evalset import eval_set  # the views feed eval-set like any split view

    e = eval_set(cat, name="area_eval", database="rest", queries="centre", threshold=[25.0])
    assert (e.n_database, e.n_queries) == (len(outside), len(inside))


def test_errors_are_one_line(zone_catalog, tmp_path):
    cat, gpkg, _ = zone_catalog
    points = tmp_path / "points.geojson"
    geopandas.GeoDataFrame(geometry=[shapely.Point(-122, 41)], crs="EPSG:4326").to_file(points)
    ocean = tmp_path / "ocean.geojson"
    geopandas.GeoDataFrame(geometry=[shapely.box(-150, 10, -149, 11)], crs="EPSG:4326").to_file(ocean)
    cases = [
        (tmp_path / "nothing.gpkg", "no area file"),
        (points, "has no polygon"),
        (ocean, "no image of collection 'database' lies inside"),
    ]
    for path, message in cases:
        res = runner.invoke(vgdata_app, ["split-area", str(cat), "--name", "bad", "--within", str(path)])
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) <= 3  # one message (rich may wrap it)
    with pytest.raises(UsageError, match="no layer 'roads'"):
        split_area(cat, name="bad", within=gpkg, layer="roads")
    assert "bad" not in json.loads((cat / "build.json").read_text()).get("splits", {})


def test_a_rebuilt_collection_makes_the_view_say_it_is_stale(tmp_path):
    cat = tmp_path / "cat"
    _write_collection(cat, 1, 60)
    area = tmp_path / "area.geojson"
    geopandas.GeoDataFrame(geometry=[shapely.box(-124, 39, -119, 44)], crs="EPSG:4326").to_file(area)
    split_area(cat, name="box", within=area)
    _write_collection(cat, 2, 60)  # the collection is built again: other rows, another fingerprint
    assert area_split_status(cat) == ["area split 'box' is stale: collection 'database' changed; run split-area again"]
    with pytest.raises(duckdb.Error, match="area split box is stale"):
        _view_ids(cat, "box")
    # Every command that reads the split says so in one line; `vgdata check` and the report flag it.
    res = runner.invoke(vgdata_app, ["eval-set", str(cat), "--name", "e", "--database", "database", "--queries", "box"])
    assert res.exit_code == 2 and "area split 'box' is stale" in res.output and "Traceback" not in res.output
    from vgdata.check import check_catalog

    [finding] = [r for r in check_catalog(cat).results if r.audit == "split_current"]
    assert (finding.subject, finding.status) == ("split 'box'", "failed") and "collection 'database' changed" in (
        finding.reason
    )
