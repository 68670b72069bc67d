"""``vgdata synth --footprints``: a synthetic city over real building polygons (vgdata.synth.footprints).

A hand-made GeoPackage in EPSG:3857 near Prague: a 20 x 12 m rectangle (``height`` "30 m") north of an
east-west street and an L-shaped (non-convex) building south of it (``building:levels`` 4). Expected
positions come from pyproj directly (3857 -> 4326 -> UTM 33N), never from the code under test.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

gpd = pytest.importorskip("geopandas")
pytest.importorskip("pyogrio")
shapely = pytest.importorskip("shapely")
from pyproj import Transformer  # noqa: E402
from shapely.geometry import LineString, Polygon  # noqa: E402

from cli import vgdata_app  # noqa: E402

LAT0, LON0 = 50.1, 14.4  # the UTM 33N point the hand-made layout is drawn around
RECT = [(-10, 9), (10, 9), (10, 21), (-10, 21)]  # metres east/north of LAT0, LON0
L_SHAPE = [(-30, -9), (0, -9), (0, -20), (-15, -20), (-15, -35), (-30, -35)]
STREET = [(-60, 0), (60, 0)]


def _utm_of_latlon() -> Transformer:
    return Transformer.from_crs(4326, 32633, always_xy=True)


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory) -> Path:
    """buildings + streets layers in EPSG:3857, drawn in metres around (LAT0, LON0) in UTM 33N."""
    e0, n0 = _utm_of_latlon().transform(LON0, LAT0)
    to3857 = Transformer.from_crs(32633, 3857, always_xy=True)

    def shift(coords):
        return [to3857.transform(e0 + x, n0 + y) for x, y in coords]

    path = tmp_path_factory.mktemp("fp") / "city.gpkg"
    b = gpd.GeoDataFrame(
        {"height": ["30 m", None], "building:levels": [None, "4"]},
        geometry=[Polygon(shift(RECT)), Polygon(shift(L_SHAPE))],
        crs=3857,
    )
    b.to_file(path, layer="buildings", driver="GPKG")
    s = gpd.GeoDataFrame({"highway": ["residential"]}, geometry=[LineString(shift(STREET))], crs=3857)
    s.to_file(path, layer="streets", driver="GPKG")
    return path


def _local_frame(gpkg: Path):
    """(origin lat/lon, function lat/lon -> local metres, the footprints in local metres, the street), from pyproj.

    The origin is the centre of the buildings' lat/lon bounding box (the documented rule).
    """
    to4326 = Transformer.from_crs(3857, 4326, always_xy=True)
    b = gpd.read_file(gpkg, layer="buildings")
    lonlat = [np.array([to4326.transform(x, y) for x, y in g.exterior.coords]) for g in b.geometry]
    allv = np.vstack(lonlat)
    lat0 = (allv[:, 1].min() + allv[:, 1].max()) / 2
    lon0 = (allv[:, 0].min() + allv[:, 0].max()) / 2
    to_utm = _utm_of_latlon()
    e0, n0 = to_utm.transform(lon0, lat0)

    def local(lat, lon):
        e, n = to_utm.transform(lon, lat)
        return np.asarray(e) - e0, np.asarray(n) - n0

    polys = [Polygon(np.column_stack(local(v[:, 1], v[:, 0]))) for v in lonlat]
    s = np.array([to4326.transform(x, y) for x, y in gpd.read_file(gpkg, layer="streets").geometry[0].coords])
    return (lat0, lon0), local, polys, LineString(np.column_stack(local(s[:, 1], s[:, 0])))


def _city(gpkg: Path, streets: str | None = "streets"):
    from vgdata.synth.footprints import footprint_city, read_layers

    b, s = read_layers(gpkg, "buildings", streets)
    return footprint_city(b, s, seed=0, source=str(gpkg), licence="test data", layers={})


def test_parts_are_convex_ccw_and_tile_each_polygon(gpkg):
    city = _city(gpkg)
    (lat0, lon0), _, polys, _ = _local_frame(gpkg)
    assert city.origin == pytest.approx((lat0, lon0), abs=1e-7)
    parts = [b.footprint for b in city.scene.buildings]
    for fp in parts:
        nxt, after = np.roll(fp, -1, axis=0), np.roll(fp, -2, axis=0)
        cross = (nxt[:, 0] - fp[:, 0]) * (after[:, 1] - nxt[:, 1]) - (nxt[:, 1] - fp[:, 1]) * (after[:, 0] - nxt[:, 0])
        assert (cross >= -1e-9).all(), "a reflex vertex: not convex counter-clockwise"
        area = 0.5 * np.sum(fp[:, 0] * nxt[:, 1] - nxt[:, 0] * fp[:, 1])  # shoelace, > 0 for CCW
        assert area > 0
    assert len(parts) >= 3  # the rectangle, and at least two convex pieces of the L
    # every polygon is the union of the parts lying in it (areas within 1e-6 relative)
    for poly in polys:
        mine = [Polygon(fp) for fp in parts if Polygon(fp).representative_point().within(poly)]
        union = shapely.union_all(mine)
        assert union.symmetric_difference(poly).area <= 1e-6 * poly.area
        assert sum(p.area for p in mine) == pytest.approx(poly.area, rel=1e-6)  # no overlaps
    heights = sorted({b.height for b in city.scene.buildings})
    assert heights == [4 * 3.0 + 1.0, 30.0]  # building:levels x 3 m + 1 m; "30 m"
    assert city.provenance["heights"] == {"height": 1, "building:levels": 1}


def test_planned_positions_are_on_the_street_outside_buildings(gpkg):
    from vgdata.synth.plan import PRESETS, plan_captures, plan_queries

    city = _city(gpkg)
    _, _, polys, street = _local_frame(gpkg)
    preset = PRESETS["tiny"]
    captures = plan_captures(city.scene.streets, preset, 0, city.blocked)
    queries = plan_queries("v2", 20, captures, city.scene.streets, preset, 0, city.blocked)
    assert len(captures) >= 10
    for p in [shapely.Point(c.x, c.y) for c in captures]:
        assert min(poly.distance(p) for poly in polys) > 1.0  # never inside (or against) a building
        assert street.distance(p) < 3.0  # in the right-hand lane of the 10 m street
    for p in [shapely.Point(q.x, q.y) for q in queries]:
        assert min(poly.distance(p) for poly in polys) > 1.0


@pytest.mark.slow
def test_synth_cli_writes_panoramas_on_the_street_outside_buildings(gpkg, tmp_path):
    out = tmp_path / "raw"
    res = CliRunner().invoke(
        vgdata_app,
        ["synth", str(out), "--footprints", str(gpkg), "--layer", "buildings", "--streets", "streets",
         "--preset", "tiny", "--workers", "1", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["panoramas"] > 0
    _, local, polys, street = _local_frame(gpkg)
    with (out / "panoramas.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(list((out / "panoramas").glob("*.jpg")))
    x, y = local(np.array([float(r["lat"]) for r in rows]), np.array([float(r["lon"]) for r in rows]))
    for px, py in zip(x, y, strict=True):
        p = shapely.Point(px, py)
        assert min(poly.distance(p) for poly in polys) > 1.0  # never inside (or against) a building
        assert street.distance(p) < 3.0  # in the right-hand lane of the 10 m street
    readme = (out / "README.txt").read_text()
    assert str(gpkg) in readme and "2 buildings" in readme
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["buildings"] == 2 and prov["streets"] == "street layer"


def _column(azimuth: float, heading: float, width: int) -> int:
    """The project's convention: column j's centre (j + 0.5) looks at heading + (j + 0.5 - W/2) * 360 / W."""
    off = (azimuth - heading + 180.0) % 360.0 - 180.0
    return math.floor(width / 2 + off * width / 360.0)


def test_facade_edges_are_where_the_footprint_predicts(gpkg):
    from vgdata.synth.render import render_panorama
    from vgdata.synth.scene import Scene

    city = _city(gpkg)
    red, blue = (230, 20, 20), (20, 20, 230)
    _, _, polys, _ = _local_frame(gpkg)
    rect = polys[0]
    recoloured = [
        dataclasses.replace(b, colour=red if Polygon(b.footprint).representative_point().within(rect) else blue)
        for b in city.scene.buildings
    ]
    # no streets: no parked cars or trees in front of the facades; the facades are the subject here
    scene = Scene(seed=0, size_m=city.scene.size_m, streets=[], buildings=recoloured)
    cam, heading, width, cam_h = (-30.0, -1.5), 80.0, 720, 2.5
    img = render_panorama(scene, *cam, heading, width=width, year=2017, cam_height=cam_h)
    verts = np.asarray(rect.exterior.coords)[:-1]
    az = np.degrees(np.arctan2(verts[:, 0] - cam[0], verts[:, 1] - cam[1])) % 360.0
    dist = np.hypot(verts[:, 0] - cam[0], verts[:, 1] - cam[1])
    for k, outside in ((int(np.argmin(az)), -1), (int(np.argmax(az)), 1)):  # left and right silhouette
        el = math.atan((20.0 - cam_h) / dist[k])  # 20 m up the corner: above every occluder, below the roof
        row = math.floor((90.0 - math.degrees(el)) * (width // 2) / 180.0)
        pred = _column(float(az[k]), heading, width)
        is_red = np.abs(img[row].astype(int) - np.array(red)).max(axis=1) < 40
        assert is_red[pred - 3 * outside] and not is_red[pred + 3 * outside]
        changes = np.flatnonzero(is_red[1:] != is_red[:-1]) + (1 if outside > 0 else 0)
        assert np.min(np.abs(changes - pred)) <= 2, (pred, changes)


def test_derived_streets_keep_clear_of_buildings(gpkg):
    city = _city(gpkg, streets=None)
    _, _, polys, _ = _local_frame(gpkg)
    assert city.provenance["streets"] == "derived from the gaps between buildings"
    assert city.scene.streets
    for s in city.scene.streets:
        seg = LineString([s.p0, s.p1])
        assert min(p.distance(seg) for p in polys) >= 4.0 - 1e-6
        assert s.length >= 8.0
    # the gap between the rectangle (north) and the L (south) where they face each other: its middle line
    rect, ell = polys
    x_mid = (max(rect.bounds[0], ell.bounds[0]) + min(rect.bounds[2], ell.bounds[2])) / 2
    mid = shapely.Point(x_mid, (rect.bounds[1] + ell.bounds[3]) / 2)
    assert min(LineString([s.p0, s.p1]).distance(mid) for s in city.scene.streets) <= 2.0  # simplified to 2 m


def test_bad_inputs_are_one_line_errors(gpkg, tmp_path):
    runner = CliRunner()
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--footprints", str(tmp_path / "none.gpkg")])
    assert res.exit_code != 0 and "no such file" in res.output and "Traceback" not in res.output
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--footprints", str(gpkg), "--layer", "nope"])
    assert res.exit_code != 0 and "nope" in res.output and "Traceback" not in res.output
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--preset", "prague", "--footprints", str(gpkg)])
    assert res.exit_code != 0 and "brings its own footprints" in res.output


def test_parse_height():
    from vgdata.synth.footprints import parse_height

    assert parse_height("12 m") == 12.0 and parse_height("12.5") == 12.5 and parse_height("7,5") == 7.5
    assert parse_height(9) == 9.0 and parse_height("tall") is None and parse_height(None) is None
    assert parse_height(float("nan")) is None and parse_height("-3") is None


def test_missing_extra_names_the_pip_command():
    from vgdata.errors import UsageError
    from vgdata.synth.footprints import _need

    with pytest.raises(UsageError, match=r"pip install 'vgdata\[prague\]'"):
        _need("vgdata_no_such_module", "prague")
