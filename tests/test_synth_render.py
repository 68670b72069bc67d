"""The synthetic city's scene model and renderer: determinism, layout, geometry, years, night."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon
from shapely.strtree import STRtree

from vgdata.panorama import strip_rows
from vgdata.synth.render import _year_state, render_panorama, visible_facade_columns
from vgdata.synth.scene import Building, Occluder, Scene, Street, make_scene, mix, occluders, unit

ROOT = Path(__file__).resolve().parents[1]
MAGENTA = (255, 0, 255)


@pytest.fixture(scope="module")
def city() -> Scene:
    return make_scene(0)


def street_pose(scene: Scene, street: int, along: float) -> tuple[float, float, float]:
    """A driving position: ``along`` metres from p0, in the right-hand lane, facing along the street."""
    s = scene.streets[street]
    x, y = s.point(along, s.width / 4)
    return x, y, s.heading


def digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# ---------------------------------------------------------------- hashing, determinism


def test_mix_is_a_fixed_function():
    # Fixed values: the city must not change between numpy versions or processes.
    assert int(mix(0)) == 0xE220A8397B1DCDAF
    assert int(mix(1, 2, 3)) == int(mix(np.array([1]), 2, np.array([3]))[0])
    assert int(mix(-1)) == int(mix(np.uint64(2**64 - 1)))
    u = unit(7, np.arange(10_000))
    assert u.shape == (10_000,) and 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    with pytest.raises(TypeError):
        mix(1.5)


def test_make_scene_deterministic_and_order_independent():
    first = make_scene(3)
    make_scene(1), make_scene(2, size_m=300)
    again = make_scene(3)
    assert first.key == again.key
    assert first.streets == again.streets
    assert len(first.buildings) == len(again.buildings)
    for a, b in zip(first.buildings, again.buildings, strict=True):
        assert np.array_equal(a.footprint, b.footprint) and a.height == b.height and a.seed == b.seed
    assert make_scene(4).key != first.key
    assert make_scene(4).streets != first.streets


def test_render_deterministic(city):
    x, y, h = street_pose(city, 1, 80.0)
    a = render_panorama(city, x, y, h, width=512, year=2015)
    b = render_panorama(make_scene(0), x, y, h, width=512, year=2015)
    assert np.array_equal(a, b)
    other = make_scene(1)
    x1, y1, h1 = street_pose(other, 1, 80.0)
    c = render_panorama(other, x1, y1, h1, width=512, year=2015)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5.0


def test_render_same_bytes_in_fresh_processes(city):
    """Same bytes whatever PYTHONHASHSEED and whatever ran before (fresh interpreters)."""
    x, y, h = street_pose(city, 2, 50.0)
    here = digest(render_panorama(city, x, y, h, width=256, year=2013, night=True))
    code = (
        "import hashlib, numpy as np\n"
        "from vgdata.synth.scene import make_scene\n"
        "from vgdata.synth.render import render_panorama\n"
        f"img = render_panorama(make_scene(0), {x!r}, {y!r}, {h!r}, width=256, year=2013, night=True)\n"
        "print(hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest())\n"
    )
    for hashseed in ("1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_output_shape_and_dtype(city):
    x, y, h = street_pose(city, 0, 60.0)
    img = render_panorama(city, x, y, h, width=512, year=2015)
    assert img.shape == (256, 512, 3) and img.dtype == np.uint8
    night = render_panorama(city, x, y, h, width=512, year=2015, night=True)
    assert night.shape == (256, 512, 3) and night.dtype == np.uint8
    for bad in (7, 0, 513):
        with pytest.raises(ValueError):
            render_panorama(city, x, y, h, width=bad, year=2015)
    with pytest.raises(ValueError):
        render_panorama(city, x, y, float("nan"), width=512, year=2015)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_scene_sanity(seed):
    size = 400.0
    scene = make_scene(seed, size_m=size)
    half = size / 2
    assert len(scene.streets) >= 3 and len(scene.buildings) >= 100
    for s in scene.streets:
        for px, py in (s.p0, s.p1):
            assert -half - 1e-6 <= px <= half + 1e-6 and -half - 1e-6 <= py <= half + 1e-6
        assert 13.0 <= s.width <= 17.0 and 2.5 <= s.sidewalk <= 3.2
    diagonal = [s for s in scene.streets if min(abs(s.direction[0]), abs(s.direction[1])) > 0.3]
    assert len(diagonal) >= 1
    polys = [Polygon(b.footprint) for b in scene.buildings]
    for b, p in zip(scene.buildings, polys, strict=True):
        assert 6.0 <= b.height <= 40.0
        assert p.is_valid and p.exterior.is_ccw and p.area >= 40.0
        assert abs(p.convex_hull.area - p.area) < 1e-6 * p.area + 1e-6  # convex
        assert np.all(np.abs(b.footprint) <= half + 1e-6)
    # No building on a street or its sidewalks.
    tree = STRtree(polys)
    for s in scene.streets:
        line = LineString([s.p0, s.p1])
        clearance = s.width / 2 + s.sidewalk
        for i in tree.query(line.buffer(clearance + 1.0)):
            assert polys[i].distance(line) >= clearance - 1e-6
        assert all(polys[i].distance(line) >= s.width / 2 for i in range(len(polys)))
    # Buildings do not overlap each other.
    for i, p in enumerate(polys):
        for j in tree.query(p):
            if j > i:
                assert p.intersection(polys[j]).area < 1e-6
    # Block sizes vary: spacing of the north-south streets.
    xs = sorted(s.p0[0] for s in scene.streets if s.direction == (0.0, 1.0))
    gaps = np.diff(xs)
    assert len(xs) >= 2 and gaps.min() >= 50 + 13 + 5 and gaps.max() <= 110 + 16.5 + 2 * 3.2 + 1e-6


def test_scene_seg_arrays(city):
    nseg = sum(len(b.footprint) for b in city.buildings)
    assert len(city.seg_x0) == nseg == len(city.seg_building)
    # Outward normals: the building's centroid lies on the inner side of each of its edges.
    for k in range(0, nseg, 37):
        b = city.buildings[city.seg_building[k]]
        cx, cy = b.footprint.mean(axis=0)
        assert (cx - city.seg_x0[k]) * city.seg_nx[k] + (cy - city.seg_y0[k]) * city.seg_ny[k] < 0
    assert np.all(city.seg_u0 >= 0)


def test_occluders_vary_by_year(city):
    a, b = occluders(city, 2013), occluders(city, 2017)
    assert a == occluders(make_scene(0), 2013)
    kinds = {o.kind for o in a}
    assert {"car", "tree", "pole"} <= kinds
    assert all(isinstance(o, Occluder) and 1.5 <= o.height <= 8.0 for o in a)
    cars_a = {(o.x, o.y) for o in a if o.kind in ("car", "van", "truck")}
    cars_b = {(o.x, o.y) for o in b if o.kind in ("car", "van", "truck")}
    assert len(cars_a & cars_b) < 0.1 * len(cars_a)
    poles_a = [(o.x, o.y) for o in a if o.kind == "pole"]
    assert poles_a == [(o.x, o.y) for o in b if o.kind == "pole"]
    trees_a = {(o.x, o.y) for o in a if o.kind == "tree"}
    trees_b = {(o.x, o.y) for o in b if o.kind == "tree"}
    assert 0.6 * len(trees_a) < len(trees_a & trees_b) < len(trees_a)
    # Occluders stay off the buildings and the driving lanes.
    polys = STRtree([Polygon(bd.footprint) for bd in city.buildings])
    for o in a:
        assert len(polys.query(Point(o.x, o.y).buffer(0.3), predicate="intersects")) == 0


def test_repaint_rate(city):
    """About 1 - 0.85^4 = 48 % of the buildings change colour between 2013 and 2017."""
    a, b = _year_state(city, 2013).wall, _year_state(city, 2017).wall
    changed = np.any(np.abs(a - b) > 1e-9, axis=1).mean()
    assert 0.35 < changed < 0.62
    assert np.array_equal(_year_state(city, 2015).wall, _year_state(city, 2015).wall)


# ---------------------------------------------------------------- geometry


def lone_building(colour=MAGENTA) -> Scene:
    """One 10 x 10 m, 15 m tall building at x 10..20, y 30..40 on an empty plane."""
    fp = np.array([[10.0, 30.0], [20.0, 30.0], [20.0, 40.0], [10.0, 40.0]])
    return Scene(seed=0, size_m=400.0, streets=[], buildings=[Building(fp, 15.0, seed=1, colour=colour)])


def magenta(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 200) & (b > 200) & (g < 60)


def column_of(azimuth: float, heading: float, width: int) -> float:
    """Continuous column u of an azimuth (README: azimuth(u) = heading + (u - W/2) * 360 / W)."""
    return (width / 2 + ((azimuth - heading + 180.0) % 360.0 - 180.0) * width / 360.0) % width


def circular_run(mask: np.ndarray) -> tuple[int, int]:
    """(first, last) column of the single circular run of True in ``mask``."""
    starts = np.flatnonzero(mask & ~np.roll(mask, 1))
    ends = np.flatnonzero(mask & ~np.roll(mask, -1))
    assert len(starts) == 1 and len(ends) == 1, (starts, ends)
    return int(starts[0]), int(ends[0])


def cdist(a: float, b: float, width: int) -> float:
    d = abs(a - b) % width
    return min(d, width - d)


@pytest.mark.parametrize("heading", [0.0, 37.5, 90.0, 180.0, 271.3, 359.9])
@pytest.mark.parametrize("cam", [(0.0, 0.0), (3.0, 1.5), (15.0, 0.0), (27.0, 44.0)])
def test_facade_corners_at_predicted_columns(heading, cam):
    """The building's silhouette spans the columns whose azimuths its corners predict.

    Columns whose centre azimuth lies inside the corners' azimuth range show the facade; the
    first and last such columns are ceil(u_left - 0.5) and floor(u_right - 0.5). Tolerance 1.5
    columns at W = 1024 (0.53 degrees). Camera (15, 0) sees the building straddle north (azimuth
    0/360); heading 180 puts it across the image's left/right edge; camera (27, 44) is beyond the
    far corner (the building to its south-west).
    """
    width = 1024
    scene = lone_building()
    cx, cy = cam
    img = render_panorama(scene, cx, cy, heading, width=width, year=2015)
    corners = scene.buildings[0].footprint
    centre = math.degrees(math.atan2(15.0 - cx, 35.0 - cy))
    rel = [((math.degrees(math.atan2(px - cx, py - cy)) - centre + 180) % 360) - 180 for px, py in corners]
    u_left = column_of(centre + min(rel), heading, width)
    u_right = column_of(centre + max(rel), heading, width)
    first_pred, last_pred = math.ceil(u_left - 0.5) % width, math.floor(u_right - 0.5) % width
    row = width // 4 - 6  # elevation ~ +1.9 degrees: on the facade, above the camera
    first, last = circular_run(magenta(img[row]))
    assert cdist(first, first_pred, width) <= 1.5
    assert cdist(last, last_pred, width) <= 1.5
    # The same from the renderer's own per-column hit test.
    vis = visible_facade_columns(scene, cx, cy, heading, width)
    first_v, last_v = circular_run(vis["building"] == 0)
    assert (first_v, last_v) == (first, last)


def test_parallax_between_two_positions():
    """Moving 4 m east moves the corners by the predicted columns (nearby positions agree)."""
    width, heading = 1024, 20.0
    scene = lone_building()
    runs = []
    for cx in (0.0, 4.0):
        img = render_panorama(scene, cx, 0.0, heading, width=width, year=2015)
        runs.append(circular_run(magenta(img[width // 4 - 6])))
    # Left silhouette corner (10, 40), right corner (20, 30).
    for (px, py), k in (((10.0, 40.0), 0), ((20.0, 30.0), 1)):
        pred_shift = column_of(math.degrees(math.atan2(px - 4.0, py)), heading, width) - column_of(
            math.degrees(math.atan2(px, py)), heading, width
        )
        assert abs((runs[1][k] - runs[0][k]) - pred_shift) <= 1.5
        assert pred_shift < -10  # a real parallax (~ -27 and -22 columns)


@pytest.mark.parametrize("width", [512, 1024, 3328])
@pytest.mark.slow
def test_facade_top_and_bottom_rows(width):
    """The face y = 30 seen head-on from (15, 0): top at atan((15 - 2.5) / 30), foot at atan(-2.5 / 30)."""
    height = width // 2
    scene = lone_building()
    col = width // 2
    for cam_height in (2.5, 1.6):
        img = render_panorama(scene, 15.0, 0.0, 0.0, width=width, year=2015, cam_height=cam_height)
        rows = np.flatnonzero(magenta(img[:, col]))
        az = math.radians((col + 0.5 - width / 2) * 360.0 / width)
        dist = 30.0 / math.cos(az)
        top_el = math.degrees(math.atan((15.0 - cam_height) / dist))
        foot_el = math.degrees(math.atan(-cam_height / dist))
        v_top = (90.0 - top_el) * height / 180.0
        v_foot = (90.0 - foot_el) * height / 180.0
        assert abs(rows[0] - math.ceil(v_top - 0.5)) <= 1.5
        assert abs(rows[-1] - math.floor(v_foot - 0.5)) <= 1.5
        assert len(rows) == rows[-1] - rows[0] + 1  # one solid run


def test_taller_building_shows_behind_lower_one():
    low = np.array([[-5.0, 20.0], [5.0, 20.0], [5.0, 30.0], [-5.0, 30.0]])
    tall = np.array([[-5.0, 50.0], [5.0, 50.0], [5.0, 60.0], [-5.0, 60.0]])
    scene = Scene(
        seed=0,
        size_m=400.0,
        streets=[],
        buildings=[Building(low, 8.0, seed=1, colour=(255, 0, 0)), Building(tall, 35.0, seed=2, colour=(0, 0, 255))],
    )
    width = 1024
    img = render_panorama(scene, 0.0, 0.0, 0.0, width=width, year=2015).astype(int)
    column = img[:, width // 2]
    red = (column[:, 0] > 200) & (column[:, 2] < 60)
    blue = (column[:, 2] > 200) & (column[:, 0] < 60)
    # tall top: atan(32.5 / 50) = 33.0 deg; low top: atan(5.5 / 20) = 15.4 deg
    v = lambda el: (90.0 - el) * (width // 2) / 180.0  # noqa: E731
    assert abs(np.flatnonzero(blue)[0] - math.ceil(v(math.degrees(math.atan(32.5 / 50))) - 0.5)) <= 1.5
    assert abs(np.flatnonzero(blue)[-1] + 1 - np.flatnonzero(red)[0]) <= 1
    assert abs(np.flatnonzero(red)[0] - math.ceil(v(math.degrees(math.atan(5.5 / 20))) - 0.5)) <= 1.5


@pytest.mark.parametrize("width", [512, 1024])
def test_heading_plus_90_is_a_roll(city, width):
    """heading h + 90 gives the heading-h image rolled left by W/4 columns."""
    x, y, h = street_pose(city, 3, 70.0)
    a = render_panorama(city, x, y, h, width=width, year=2015).astype(int)
    b = render_panorama(city, x, y, h + 90.0, width=width, year=2015).astype(int)
    rolled = np.roll(a, -width // 4, axis=1)
    diff = np.abs(b - rolled).max(axis=-1)
    assert (diff > 8).mean() < 0.002
    assert np.abs(b - rolled).mean() < 0.3
    # and not a roll by any other amount nearby
    for off in (-1, 1):
        assert np.abs(b - np.roll(a, -width // 4 + off, axis=1)).mean() > np.abs(b - rolled).mean()


def test_nearby_positions_see_the_same_buildings(city):
    x, y, h = street_pose(city, 4, 90.0)
    s = city.streets[4]
    near = s.point(93.0, s.width / 4)
    a = visible_facade_columns(city, x, y, h, 512)["building"]
    b = visible_facade_columns(city, *near, h, 512)["building"]
    seen_a, seen_b = set(a[a >= 0]), set(b[b >= 0])
    assert len(seen_a) >= 8
    assert len(seen_a & seen_b) >= 0.7 * len(seen_a)
    assert (a == b).mean() > 0.6


# ---------------------------------------------------------------- years and night


def test_years_differ_but_mostly_match(city):
    width = 512
    r0, r1 = strip_rows(width // 2)
    x, y, h = street_pose(city, 1, 120.0)
    a = render_panorama(city, x, y, h, width=width, year=2013).astype(int)
    b = render_panorama(city, x, y, h, width=width, year=2017).astype(int)
    x2, y2, h2 = street_pose(city, 6, 200.0)
    c = render_panorama(city, x2, y2, h, width=width, year=2013).astype(int)
    changed = (np.abs(a - b).max(axis=-1) > 10).mean()
    assert changed > 0.05  # repaint, cars, trees, sky, light
    years = np.abs(a - b)[r0:r1].mean()
    places = np.abs(a - c)[r0:r1].mean()
    assert years < 0.6 * places
    assert (np.abs(a - b)[r0:r1].max(axis=-1) <= 10).mean() > 0.3  # a good part is unchanged


def test_night_differs_from_day(city):
    x, y, h = street_pose(city, 2, 150.0)
    day = render_panorama(city, x, y, h, width=512, year=2015)
    night = render_panorama(city, x, y, h, width=512, year=2015, night=True)
    assert night.mean() < 0.35 * day.mean()
    # lit windows: some bright warm pixels on the facades
    warm = (night[..., 0] > 180) & (night[..., 1] > 120) & (night[..., 2] < 150)
    assert warm.sum() > 50
    # the sky is dark at night
    assert night[: 512 // 8].mean() < 40 < day[: 512 // 8].mean()


def test_streets_in_view(city):
    """Driving along a street: road below, sky above, facades on both sides."""
    width = 512
    x, y, h = street_pose(city, 5, 100.0)
    img = render_panorama(city, x, y, h, width=width, year=2015).astype(int)
    vis = visible_facade_columns(city, x, y, h, width)
    left = vis["building"][width // 4 - 20 : width // 4 + 20]  # 90 degrees left of travel
    right = vis["building"][3 * width // 4 - 20 : 3 * width // 4 + 20]
    assert (left >= 0).mean() > 0.5 and (right >= 0).mean() > 0.5
    assert vis["distance"][width // 4] < 25 and vis["distance"][3 * width // 4] < 25
    below = img[int(width / 2 * 0.85), width // 2]  # straight ahead, ~27 degrees down: asphalt
    assert np.ptp(below) < 30 and 50 < below.mean() < 130
    assert img[2, :, 2].mean() > img[2, :, 0].mean()  # a blue-ish sky at the zenith


def test_flat_colour_and_street_api():
    s = Street((0.0, -50.0), (0.0, 50.0), 14.0)
    assert s.heading == 0.0 and s.length == 100.0
    assert s.point(10.0, 3.5) == (3.5, -40.0)  # right of northward travel is east
    assert Street((0.0, 0.0), (10.0, 0.0), 12.0).heading == 90.0


def test_empty_scenes_render():
    empty = Scene(seed=0, size_m=200.0, streets=[], buildings=[])
    img = render_panorama(empty, 0.0, 0.0, 0.0, width=64, year=2015)
    assert img.shape == (32, 64, 3) and img[:16].mean() > img[16:].mean() * 0.8  # sky above ground
    road_only = Scene(seed=0, size_m=200.0, streets=[Street((0.0, -100.0), (0.0, 100.0), 14.0)], buildings=[])
    assert occluders(road_only, 2015)  # cars, trees, poles along the one street
    night = render_panorama(road_only, 3.5, 0.0, 0.0, width=64, year=2015, night=True)
    assert night.mean() < img.mean()


@pytest.mark.parametrize("night", [False, True])
def test_az_span_renders_exactly_the_full_columns(city, night):
    # A window of columns is the same per-column computation: equal bytes where rendered, black elsewhere.
    x, y, h = street_pose(city, 0, 60.0)
    width, span = 512, 40.0
    full = render_panorama(city, x, y, h, width=width, year=2015, night=night)
    part = render_panorama(city, x, y, h, width=width, year=2015, night=night, az_span=span)
    offset = (np.arange(width) + 0.5 - width / 2) * 360.0 / width
    inside = np.abs(offset) <= span
    assert inside.sum() == 2 * round(span * width / 360)  # 57 columns each side of the centre (hand count)
    assert np.array_equal(part[:, inside], full[:, inside])
    assert not part[:, ~inside].any()


def test_query_photo_from_a_window_equals_the_full_render(city):
    # The photo only samples columns inside photo_az_span: cutting it from the window changes no byte.
    from vgdata.panorama import perspective_crop
    from vgdata.synth.generate import photo_az_span

    x, y, h = street_pose(city, 1, 40.0)
    width = 1024
    full = render_panorama(city, x, y, h, width=width, year=2013)
    for fov, size, pitch in [(85.0, (480, 640), 15.0), (45.0, (720, 405), -5.0), (70.0, (600, 600), 0.0)]:
        span = photo_az_span(fov, size, pitch) + 3 * 360.0 / width
        # the corners bound the azimuth: a wide portrait photo pitched up reaches past fov / 2
        assert span > fov / 2
        part = render_panorama(city, x, y, h, width=width, year=2013, az_span=span)
        a = perspective_crop(full, heading=h, pitch=pitch, fov_deg=fov, out_size=size, pano_heading=h)
        b = perspective_crop(part, heading=h, pitch=pitch, fov_deg=fov, out_size=size, pano_heading=h)
        assert np.array_equal(a, b)
