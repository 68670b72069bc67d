"""UTM coordinates given by a user (CSV columns, '@' names), checked point by point.

Conventions are :mod:`vgdata.geo`'s (metres, zones 1..60, band letters C..X, "N" and later
northern). A user-given point must be plausible before PROJ sees it: easting in
[UTM_EAST_MIN, UTM_EAST_MAX] (within 400 km of the zone's central meridian), northing in the
range of the band letter's hemisphere (0..9,400,000 m north; 1,000,000..10,000,000 m south,
with its 10,000,000 m false northing), and the latitude it gives must lie in the band the
letter names. Anything else is a per-point problem, never a guess and never an exception
for the whole batch.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vgdata.geo import (
    LAT_MAX,
    LAT_MIN,
    LETTERS,
    VALID_LETTERS,
    GeoError,
    _as_float,
    _fmt,
    northern_from,
    utm_to_latlon,
)

__all__ = ["band_letter_mismatch", "utm_to_latlon_checked"]

UTM_EAST_MIN, UTM_EAST_MAX = 100_000.0, 900_000.0
"""Plausible eastings (metres): within 400 km of the central meridian (false easting 500,000 m).
A zone is widest at the equator, 167,000..833,000 m; Norway's and Svalbard's wide zones stay inside."""
NORTH_MAX_NORTHERN = 9_400_000.0
"""Largest northing (metres) of a northern band letter (N-X); 84 N lies at 9,329,005 m."""
NORTH_MIN_SOUTHERN = 1_000_000.0
"""Smallest northing (metres) of a southern band letter (C-M); 80 S lies at 1,116,915 m."""
FALSE_NORTHING_SOUTH = 10_000_000.0
"""Added to southern northings, so that they are positive."""
BAND_TOLERANCE_DEG = 1e-5
"""A latitude within this many degrees (~1 m) of a band edge matches the letters on both sides."""


def _band_letter(lat: float) -> str:
    return LETTERS[min(max(int(np.floor((lat - LAT_MIN) / 8.0)), 0), len(LETTERS) - 1)]


def band_letter_mismatch(lat: float, letter: str) -> str | None:
    """Why ``letter`` is not the UTM latitude band of ``lat`` (degrees), or None when it is.

    A latitude within BAND_TOLERANCE_DEG of a band edge matches the letters on both sides
    (names and CSVs round their latitudes). ``lat`` must be finite.
    """
    letter = str(letter).upper()
    bands = {_band_letter(lat + d) for d in (-BAND_TOLERANCE_DEG, 0.0, BAND_TOLERANCE_DEG)}
    if letter in bands:
        return None
    return (
        f"utm_letter {letter!r} but lat {lat:.5f} is in band {_band_letter(lat)}; the letter must name the "
        "point's 8-degree latitude band (C-M south of the equator, N-X north)"
    )


def _utm_static_problem(east: float, north: float, zone: object, letter: object) -> tuple[str, str] | None:
    """(category, detail) of one user-given UTM point that is implausible before any projection."""
    if not (isinstance(zone, int | np.integer | float | np.floating) and float(zone).is_integer() and 1 <= zone <= 60):
        return "bad UTM zone", f"utm_zone={zone!r} is not an integer in 1..60"
    letter_text = str(letter).upper()
    if len(letter_text) != 1 or letter_text not in LETTERS:
        return "bad UTM zone", f"utm_letter={letter!r} is not one of {''.join(VALID_LETTERS)}"
    if not (np.isfinite(east) and np.isfinite(north)):
        return "UTM out of range", f"east={_fmt(east)}, north={_fmt(north)} are not both finite"
    if not UTM_EAST_MIN <= east <= UTM_EAST_MAX:
        return "UTM out of range", (
            f"east {_fmt(east)} m outside [{UTM_EAST_MIN:.0f}, {UTM_EAST_MAX:.0f}]: a UTM easting lies within "
            "400 km of its zone's central meridian (500000 m)"
        )
    northern = bool(northern_from(letter_text))
    lo, hi = (0.0, NORTH_MAX_NORTHERN) if northern else (NORTH_MIN_SOUTHERN, FALSE_NORTHING_SOUTH)
    if lo <= north <= hi:
        return None
    if abs(north) > FALSE_NORTHING_SOUTH:
        return "UTM out of range", f"north {_fmt(north)} m is beyond +-{FALSE_NORTHING_SOUTH:.0f} m, in no hemisphere"
    side = "northern (N-X)" if northern else "southern (C-M)"
    if northern and north < 0:
        hint = (
            "UTM northings are never negative; a southern point needs a southern letter (C-M) "
            "and the 10000000 m false northing"
        )
    elif northern:
        hint = "so large a northing is a southern point (10000000 m false northing): use its southern letter (C-M)"
    elif north < 0:
        hint = "southern northings carry a 10000000 m false northing (was it subtracted?), or the point is northern"
    else:
        hint = "so small a northing is a northern point: use its northern letter (N-X)"
    return "band letter inconsistent", (
        f"north {_fmt(north)} m is outside {lo:.0f}..{hi:.0f} m, the range of the {side} band letter "
        f"{letter_text!r}; {hint}"
    )


def utm_to_latlon_checked(
    east: ArrayLike, north: ArrayLike, zone: ArrayLike, letter: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert user-given UTM points (1-D; metres, zone, band letter) to lat/lon, point by point.

    Returns ``(lat, lon, problems)``: float64 degrees (NaN where there is a problem) and an
    object array holding None for a good point, else ``(category, detail)`` with category
    one of ``"bad UTM zone"`` (zone not 1..60, unknown letter), ``"UTM out of range"``
    (non-finite, easting outside [UTM_EAST_MIN, UTM_EAST_MAX], northing in no hemisphere),
    ``"band letter inconsistent"`` (northing outside the letter's hemisphere, or a latitude
    outside the letter's band by more than BAND_TOLERANCE_DEG) or ``"UTM not transformable"``
    (PROJ refused it). Never raises for a bad point.
    """
    e = np.array(_as_float(east), dtype=np.float64).reshape(-1)
    n = np.array(_as_float(north), dtype=np.float64).reshape(-1)
    z = np.asarray(zone).reshape(-1)
    letters = np.asarray(letter).reshape(-1)
    size = e.size
    if not (n.size == z.size == letters.size == size):
        raise ValueError("east, north, zone and letter must have the same length")
    problems = np.full(size, None, dtype=object)
    lat = np.full(size, np.nan)
    lon = np.full(size, np.nan)
    for i in range(size):
        problems[i] = _utm_static_problem(float(e[i]), float(n[i]), z[i].item(), letters[i].item())
    ok = np.flatnonzero(np.array([p is None for p in problems], dtype=bool))
    if ok.size == 0:
        return lat, lon, problems
    upper = np.char.upper(letters[ok].astype(str))
    zones = z[ok].astype(np.int16)
    try:
        lat[ok], lon[ok] = utm_to_latlon(e[ok], n[ok], zones, upper)
    except GeoError:  # find the points PROJ refuses, one by one
        for j, i in enumerate(ok):
            try:
                la, lo = utm_to_latlon(e[i], n[i], zones[j], upper[j])
                lat[i], lon[i] = float(la), float(lo)
            except GeoError as err:
                problems[i] = ("UTM not transformable", str(err.__cause__ or err))
    for j, i in enumerate(ok):
        if problems[i] is not None:
            continue
        la = lat[i]
        if not (np.isfinite(la) and np.isfinite(lon[i])):
            problems[i] = ("UTM not transformable", f"PROJ gave lat={_fmt(la)}, lon={_fmt(lon[i])}")
            continue
        if not LAT_MIN - 8.0 <= la <= LAT_MAX + 8.0:
            continue  # far outside UTM's range: the caller's lat/lon check names it
        mismatch = band_letter_mismatch(float(la), str(upper[j]))
        if mismatch is not None:
            problems[i] = ("band letter inconsistent", mismatch.replace(" but lat ", " but east/north give lat ", 1))
    for i in np.flatnonzero(np.array([p is not None for p in problems], dtype=bool)):
        lat[i] = lon[i] = np.nan
    return lat, lon, problems
