"""vgdata.geo against the `utm` package (the oracle that wrote SF-XL's names)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vgdata import geo, utm_input
from vgdata.errors import VgdataError
from vgdata.geo import (
    LETTERS,
    UTM,
    GeoError,
    heading_difference,
    invalid_latlon_reasons,
    latlon_to_utm,
    utm_distance,
    utm_epsg,
    utm_to_latlon,
    utm_zone_letter,
    wrap_heading,
)

utm = pytest.importorskip("utm")

MM = 1e-3  # metres


def assert_matches_utm(lat, lon) -> UTM:
    """Convert with vgdata.geo in one call, then compare point by point with utm.from_latlon."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    got = latlon_to_utm(lat, lon)
    zone, letter = utm_zone_letter(lat, lon)
    np.testing.assert_array_equal(zone, got.zone)
    np.testing.assert_array_equal(letter, got.letter)
    for i, (la, lo) in enumerate(zip(lat.tolist(), lon.tolist(), strict=True)):
        e, n, z, ltr = utm.from_latlon(la, lo)
        where = f"point {i} (lat={la!r}, lon={lo!r})"
        assert (int(got.zone[i]), str(got.letter[i])) == (z, ltr), where
        assert abs(got.east[i] - e) < MM, where
        assert abs(got.north[i] - n) < MM, where
    return got


# ---------- known values


def test_san_francisco_landmark():
    lat, lon = 37.77166, -122.50995
    e, n, z, letter = utm.from_latlon(lat, lon)
    got = latlon_to_utm(lat, lon)
    assert (int(got.zone), str(got.letter)) == (z, letter) == (10, "S")
    assert abs(float(got.east) - e) < MM
    assert abs(float(got.north) - n) < MM
    # The SF-XL name in REFERENCE.md a.1: @0543158.27@4180593.76@10@S@037.77166@-122.50995@...
    assert float(got.east) == pytest.approx(543158.27, abs=0.01)
    assert float(got.north) == pytest.approx(4180593.76, abs=0.01)
    assert int(got.epsg) == 32610
    assert bool(got.northern)


def test_one_zone_array_matches_utm_array():
    """A city-sized array (one zone) against utm's own array conversion."""
    rng = np.random.default_rng(1)
    lat = rng.uniform(37.6, 37.85, 10_000)
    lon = rng.uniform(-122.55, -122.35, 10_000)
    e, n, z, letter = utm.from_latlon(lat, lon)
    got = latlon_to_utm(lat, lon)
    assert np.all(got.zone == z) and np.all(got.letter == letter)
    np.testing.assert_allclose(got.east, e, rtol=0, atol=MM)
    np.testing.assert_allclose(got.north, n, rtol=0, atol=MM)


# ---------- agreement with utm point by point


def test_random_worldwide_points_match_utm():
    rng = np.random.default_rng(0)
    world = (rng.uniform(-80, 84, 16_000), rng.uniform(-180, 180, 16_000))
    norway = (rng.uniform(55, 65, 2_000), rng.uniform(0, 15, 2_000))
    svalbard = (rng.uniform(70, 84, 2_000), rng.uniform(-5, 45, 2_000))
    lat = np.concatenate([world[0], norway[0], svalbard[0]])
    lon = np.concatenate([world[1], norway[1], svalbard[1]])
    got = assert_matches_utm(lat, lon)
    assert len(np.unique(got.epsg)) == 120  # every zone in both hemispheres was exercised


def _around(values, eps=1e-9):
    return sorted({v + d for v in values for d in (-eps, 0.0, eps)})


@pytest.mark.parametrize("lat", [-79.5, -45.0, -1e-9, 0.0, 0.5, 30.0, 60.0, 75.0, 83.9])
def test_zone_edges_match_utm(lat):
    lons = [lo for lo in _around(range(-180, 181, 6)) if -180 <= lo <= 180]
    got = assert_matches_utm(np.full(len(lons), lat), lons)
    assert got.zone.min() >= 1 and got.zone.max() <= 60


@pytest.mark.parametrize("lon", [-179.5, -122.5, -3.0, 0.0, 5.0, 10.0, 25.0, 40.0, 179.5])
def test_letter_edges_match_utm(lon):
    lats = [la for la in _around([*range(-80, 81, 8), 84]) if -80 <= la <= 84]
    got = assert_matches_utm(lats, np.full(len(lats), lon))
    assert set(got.letter.tolist()) == set(LETTERS)


def test_norway_and_svalbard_exceptions_match_utm():
    lats = _around([56, 60, 64, 71, 72, 78, 83.999999])
    lons = _around([-0.5, 0, 3, 6, 9, 12, 15, 21, 27, 33, 39, 42, 45])
    lat, lon = map(np.array, zip(*itertools.product(lats, lons), strict=True))
    assert_matches_utm(lat, lon)
    zone, letter = utm_zone_letter([60.0, 60.0, 78.0, 78.0, 78.0, 78.0], [5.0, 2.0, 5.0, 15.0, 30.0, 40.0])
    assert zone.tolist() == [32, 31, 31, 33, 35, 37]
    assert letter.tolist() == ["V", "V", "X", "X", "X", "X"]


def test_equator_poles_and_antimeridian_match_utm():
    lat = [0.0, -1e-9, 1e-9, -0.0, -80.0, 84.0 - 1e-9, 84.0, -45.0, 45.0, 0.0, 0.0, 10.0]
    lon = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, -60.0, 60.0, 180.0, -180.0, 180.0 - 1e-9]
    got = assert_matches_utm(lat, lon)
    assert got.letter[:4].tolist() == ["N", "M", "N", "N"]
    assert got.northern[:4].tolist() == [True, False, True, True]
    assert got.north[1] == pytest.approx(10_000_000.0, abs=0.01)  # southern false northing
    # lon = 180 is zone 1 (utm normalises lon into [-180, 180)), the same point as lon = -180
    assert got.zone[9] == got.zone[10] == 1
    assert got.east[9] == pytest.approx(got.east[10], abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-80, max_value=84, allow_nan=False),
            st.floats(min_value=-180, max_value=180, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_hypothesis_points_match_utm(points):
    lat, lon = zip(*points, strict=True)
    assert_matches_utm(lat, lon)


# ---------- inverse


def test_inverse_round_trip_worldwide():
    rng = np.random.default_rng(2)
    lat = np.concatenate([rng.uniform(-80, 84, 20_000), [0.0, -1e-9, -80.0, 84.0, 60.0, 78.0]])
    lon = np.concatenate([rng.uniform(-180, 180, 20_000), [0.0, 0.0, 179.9, -179.9, 5.0, 20.0]])
    got = latlon_to_utm(lat, lon)
    for hemisphere in (got.letter, got.northern):
        back_lat, back_lon = utm_to_latlon(got.east, got.north, got.zone, hemisphere)
        np.testing.assert_allclose(back_lat, lat, rtol=0, atol=1e-7)
        np.testing.assert_allclose(back_lon, lon, rtol=0, atol=1e-7)


def test_inverse_matches_utm_to_latlon():
    cases = [(543158.27, 4180593.76, 10, "S"), (500000.0, 10.0, 31, "N"), (400000.0, 5_000_000.0, 55, "H")]
    for e, n, z, letter in cases:
        lat, lon = utm_to_latlon(e, n, z, letter)
        want_lat, want_lon = utm.to_latlon(e, n, z, letter)
        assert float(lat) == pytest.approx(want_lat, abs=1e-8)
        assert float(lon) == pytest.approx(want_lon, abs=1e-8)
    lat, lon = utm_to_latlon([543158.27], [4180593.76], [10], ["s"])  # lower case is accepted
    assert (round(float(lat[0]), 5), round(float(lon[0]), 5)) == (37.77166, -122.50995)


@pytest.mark.parametrize(
    ("zone", "hemisphere", "match"),
    [
        (0, "N", "zone"),
        (61, "N", "zone"),
        (10.5, "N", "zone"),
        (10, "I", "letter"),
        (10, "", "letter"),
        (10, 1, "letters or booleans"),
    ],
)
def test_inverse_rejects_bad_zone_or_letter(zone, hemisphere, match):
    with pytest.raises(GeoError, match=match):
        utm_to_latlon(500000.0, 4_000_000.0, zone, hemisphere)


def test_inverse_rejects_non_finite():
    with pytest.raises(GeoError, match="1 UTM point.*index 1"):
        utm_to_latlon([500000.0, np.nan], [4_000_000.0, 0.0], 10, True)


# ---------- invalid input


BAD_POINTS = [
    (np.nan, 10.0, "lat is NaN"),
    (85.0, 10.0, "lat 85 outside UTM range [-80, 84]"),
    (85.1, 10.0, "lat 85.1 outside UTM range [-80, 84]"),
    (-80.5, 10.0, "lat -80.5 outside UTM range [-80, 84]"),
    (10.0, 181.0, "lon 181 outside [-180, 180]"),
    (10.0, 190.0, "lon 190 outside [-180, 180]"),
    (10.0, np.nan, "lon is NaN"),
    (10.0, -np.inf, "lon -inf outside [-180, 180]"),
    (np.nan, np.nan, "lat is NaN; lon is NaN"),
]


def test_invalid_latlon_reasons_values():
    lat = [p[0] for p in BAD_POINTS] + [37.7, -80.0, 84.0]
    lon = [p[1] for p in BAD_POINTS] + [-122.5, -180.0, 180.0]
    reasons = invalid_latlon_reasons(lat, lon)
    assert reasons.dtype == object
    assert reasons.tolist() == [p[2] for p in BAD_POINTS] + [None, None, None]
    assert invalid_latlon_reasons(85.1, 0.0).item() == "lat 85.1 outside UTM range [-80, 84]"


@pytest.mark.parametrize(("lat", "lon", "reason"), BAD_POINTS)
def test_latlon_to_utm_rejects_invalid_point(lat, lon, reason):
    lats = [37.7, 37.8, lat, lat]
    lons = [-122.5, -122.4, lon, lon]
    with pytest.raises(GeoError) as info:
        latlon_to_utm(lats, lons)
    message = str(info.value)
    assert message.startswith("2 of 4 points cannot be converted to UTM; first at index 2 ")
    assert reason in message
    assert isinstance(info.value, VgdataError)
    with pytest.raises(GeoError, match="first at index 0"):
        latlon_to_utm(lat, lon)
    with pytest.raises(GeoError, match="first at index 2"):
        utm_zone_letter(lats, lons)


# ---------- shapes, scalars, inputs left alone


def test_scalars_lists_and_shapes():
    one = latlon_to_utm(37.77166, -122.50995)
    assert isinstance(one.east, np.ndarray) and one.east.shape == ()
    assert one.zone.dtype == np.int16 and one.letter.dtype == np.dtype("<U1")
    listed = latlon_to_utm([37.77166, -33.9], [-122.50995, 151.2])
    assert listed.east.shape == (2,) and listed.zone.tolist() == [10, 56]
    assert listed.letter.tolist() == ["S", "H"]
    grid = latlon_to_utm([[10.0, 20.0], [-10.0, 50.0]], 7.0)  # lon broadcast
    assert grid.east.shape == grid.zone.shape == grid.letter.shape == (2, 2)
    assert grid.letter.tolist() == [["P", "Q"], ["L", "U"]]
    empty = latlon_to_utm([], [])
    assert empty.east.shape == empty.zone.shape == (0,)


def test_inputs_are_not_modified():
    lat = np.array([37.7, 60.0, -33.9])
    lon = np.array([-122.5, 5.0, 151.2])
    before = (lat.copy(), lon.copy())
    u = latlon_to_utm(lat, lon)
    np.testing.assert_array_equal(lat, before[0])
    np.testing.assert_array_equal(lon, before[1])
    east, north = u.east.copy(), u.north.copy()
    utm_to_latlon(u.east, u.north, u.zone, u.letter)
    np.testing.assert_array_equal(u.east, east)
    np.testing.assert_array_equal(u.north, north)


def test_float32_input_is_accepted():
    lat = np.array([37.77166], dtype=np.float32)
    lon = np.array([-122.50995], dtype=np.float32)
    got = latlon_to_utm(lat, lon)
    assert got.east.dtype == np.float64
    e, n, _, _ = utm.from_latlon(float(lat[0]), float(lon[0]))
    assert abs(got.east[0] - e) < MM and abs(got.north[0] - n) < MM


# ---------- EPSG and distance


def test_utm_epsg():
    assert utm_epsg([10, 10, 1, 60], [True, False, True, False]).tolist() == [32610, 32710, 32601, 32760]
    assert utm_epsg(33, True).item() == 32633
    for bad in (0, 61, 3.5):
        with pytest.raises(GeoError, match="1..60"):
            utm_epsg(bad, True)


def test_utm_distance():
    d = utm_distance([0.0, 0.0, 100.0], [0.0, 0.0, 5.0], [10, 10, 10], [3.0, 3.0, 100.0], [4.0, 4.0, 5.0], [10, 11, 10])
    assert d.tolist() == [5.0, np.inf, 0.0]


# ---------- headings


def test_wrap_heading_values():
    got = wrap_heading([360.0, -30.0, 725.0, 0.0, -0.0, 359.5, -360.0, -1e-14, 720.0 - 1e-13])
    assert got[:7].tolist() == [0.0, 330.0, 5.0, 0.0, 0.0, 359.5, 0.0]
    assert np.signbit(got[4]) == np.False_  # no negative zero
    assert np.all((got >= 0.0) & (got < 360.0))
    assert float(-1e-14 % 360.0) == 360.0  # the float trap being guarded
    assert float(wrap_heading(-1e-14)) < 360.0
    assert np.isnan(wrap_heading(np.nan))
    assert wrap_heading(90).shape == ()


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_wrap_heading_range(h):
    w = float(wrap_heading(h))
    assert 0.0 <= w < 360.0
    assert heading_difference(w, h) < 1e-6


def test_heading_difference_values():
    assert float(heading_difference(350, 10)) == 20.0
    got = heading_difference(
        [10.0, 0.0, 90.0, -90.0, 180.0, 0.0, np.nan], [350.0, 180.0, 90.0, 90.0, -180.0, 720.5, 5.0]
    )
    assert got[:6].tolist() == [20.0, 180.0, 0.0, 180.0, 0.0, 0.5]
    assert np.isnan(got[6])


@given(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4))
def test_heading_difference_range(a, b):
    d = float(heading_difference(a, b))
    assert 0.0 <= d <= 180.0
    assert d == float(heading_difference(b, a))


def test_one_zone_shortcut_equals_per_point_path():
    """A one-zone batch takes a shortcut; adding a far point forces the per-point path."""
    rng = np.random.default_rng(3)
    lat = rng.uniform(37.6, 37.85, 1_000)
    lon = rng.uniform(-122.55, -122.35, 1_000)
    alone = latlon_to_utm(lat, lon)
    mixed = latlon_to_utm(np.append(lat, -33.9), np.append(lon, 151.2))
    for field in ("east", "north", "zone", "letter"):
        np.testing.assert_array_equal(getattr(alone, field), getattr(mixed, field)[:-1])


def test_threaded_large_blocks_equal_single_thread(monkeypatch):
    rng = np.random.default_rng(5)
    n = geo.PARALLEL_MIN_POINTS + 12_345
    lat, lon = rng.uniform(37.6, 37.9, n), rng.uniform(-122.55, -122.35, n)
    threaded = geo.latlon_to_utm(lat, lon)
    monkeypatch.setattr(geo, "PARALLEL_MIN_POINTS", 10 * n)
    single = geo.latlon_to_utm(lat, lon)
    assert np.array_equal(threaded.east, single.east) and np.array_equal(threaded.north, single.north)


def test_utm_to_latlon_checked_reports_each_bad_point_and_converts_the_rest():
    e, n = 551_000.0, 4_180_000.0  # San Francisco, zone 10 S
    east = [e, 1e30, e, e, 5e6, e, e, e, float("nan"), e, e]
    north = [n, n, -4e6, n, n, 9.9e6, -1e8, n, n, n, -5e5]
    zone = [10, 10, 10, 10, 10, 10, 10, 10, 10, 61, 10]
    letter = ["S", "S", "M", "M", "S", "S", "M", "T", "S", "S", "N"]
    lat, lon, problems = utm_input.utm_to_latlon_checked(east, north, zone, letter)
    want_lat, want_lon = utm_to_latlon(e, n, 10, "S")
    assert (lat[0], lon[0], problems[0]) == (float(want_lat), float(want_lon), None)
    kinds = [p[0] if p else None for p in problems]
    assert kinds == [
        None,
        "UTM out of range",
        "band letter inconsistent",  # southern letter, negative northing (false northing subtracted)
        "band letter inconsistent",  # southern letter, northern northing: lat -54, not band M
        "UTM out of range",
        "band letter inconsistent",  # northern letter, southern northing
        "UTM out of range",
        "band letter inconsistent",  # T for a point in band S
        "UTM out of range",
        "bad UTM zone",
        "band letter inconsistent",  # northern letter, negative northing
    ]
    assert np.isnan(lat[1:]).all() and np.isnan(lon[1:]).all()
    assert problems[2][1].startswith("north -4000000 m is outside 1000000..10000000 m, the range of the southern")
    assert problems[7][1].startswith("utm_letter 'T' but east/north give lat 37.76")


def test_utm_to_latlon_checked_accepts_band_edges_and_the_south():
    # A point 0.5 m south of 40 N may carry S or T; Sydney (56 H) converts.
    e, n = latlon_to_utm(40.0 - 4e-6, -123.0).east, latlon_to_utm(40.0 - 4e-6, -123.0).north
    for letter in ("S", "T"):
        _, _, problems = utm_input.utm_to_latlon_checked([float(e)], [float(n)], [10], [letter])
        assert problems[0] is None
    u = latlon_to_utm(-33.8678, 151.2073)
    lat, lon, problems = utm_input.utm_to_latlon_checked(
        u.east.reshape(1), u.north.reshape(1), u.zone.reshape(1), ["H"]
    )
    assert problems[0] is None and lat[0] == pytest.approx(-33.8678) and lon[0] == pytest.approx(151.2073)


def test_band_letter_mismatch():
    assert utm_input.band_letter_mismatch(37.77, "S") is None
    assert utm_input.band_letter_mismatch(37.77, "s") is None
    assert utm_input.band_letter_mismatch(-0.5, "M") is None
    assert utm_input.band_letter_mismatch(37.77, "M") == (
        "utm_letter 'M' but lat 37.77000 is in band S; the letter must name the point's 8-degree latitude band "
        "(C-M south of the equator, N-X north)"
    )
