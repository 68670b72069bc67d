"""UTM coordinates and headings, vectorised over numpy arrays.

(A little over the ~450-line rule: the zone rules, the grouped PROJ transforms and the EPSG key
belong together; user-given UTM checks live in :mod:`vgdata.utm_input`.)

Conventions:

* Latitude/longitude are WGS84 decimal degrees (EPSG:4326). UTM covers latitude
  [LAT_MIN, LAT_MAX] = [-80, 84] and longitude [-180, 180]; anything outside, NaN or
  infinite is rejected with :class:`GeoError`, never guessed.
* UTM comes from pyproj: one cached ``Transformer.from_crs(4326, epsg, always_xy=True)``
  per EPSG code, 32600 + zone in the northern hemisphere and 32700 + zone in the southern
  one. Zones are computed per point, with the Norway (32V) and Svalbard (31X/33X/35X/37X)
  exceptions, exactly as the ``utm`` package (which wrote SF-XL's names) computes them:
  longitude is first normalised into [-180, 180), so 180 E is zone 1. The hemisphere
  follows the letter ("N" and later is north), as in ``utm`` and MGRS; :func:`utm_epsg`
  (zone, hemisphere) -> EPSG code is the one key of a coordinate system (the catalog's
  ``utm_epsg`` column), :func:`utm_epsg_zone` its inverse.
* Eastings, northings and distances are metres; zones are int16 1..60; letters are
  ``<U1`` strings from LETTERS.
* Headings are degrees clockwise from north, wrapped into [0, 360); NaN stays NaN.
* UTM given by a user is checked in :mod:`vgdata.utm_input` before it reaches PROJ.

Every function takes scalars, lists or arrays (broadcast against each other) and returns
float64/int16/str arrays of the broadcast shape.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from pyproj import Transformer
from pyproj.exceptions import ProjError

from vgdata.errors import VgdataError

__all__ = [
    "LAT_MAX",
    "LAT_MIN",
    "LETTERS",
    "UTM",
    "GeoError",
    "heading_difference",
    "invalid_latlon_reasons",
    "latlon_to_utm",
    "utm_distance",
    "utm_epsg",
    "utm_epsg_zone",
    "utm_to_latlon",
    "utm_zone_letter",
    "wrap_heading",
]

LAT_MIN, LAT_MAX = -80.0, 84.0
LON_MIN, LON_MAX = -180.0, 180.0
# Latitude bands of 8 degrees from -80; X is repeated because band X spans 72..84.
LETTERS = "CDEFGHJKLMNPQRSTUVWXX"
WGS84_EPSG = 4326

_LETTER_ARRAY = np.array(list(LETTERS), dtype="<U1")
_FIRST_NORTH_BAND = LETTERS.index("N")
VALID_LETTERS = np.array(sorted(set(LETTERS)), dtype="<U1")
# A point's group code is (zone - 1) + 60 * southern: 0..119, small enough for radix sort.
_N_CODES = 120


class GeoError(VgdataError):
    """Coordinates that cannot be converted: outside UTM's range, NaN, or a bad zone/letter."""


@dataclass(frozen=True, eq=False)
class UTM:
    """UTM coordinates of a batch of points, one entry per input point."""

    east: np.ndarray
    """Easting in metres (float64)."""
    north: np.ndarray
    """Northing in metres (float64); southern points carry the 10,000,000 m false northing."""
    zone: np.ndarray
    """Zone number 1..60 (int16)."""
    letter: np.ndarray
    """Latitude band letter (``<U1``); "N" and later mean the northern hemisphere."""

    @property
    def northern(self) -> np.ndarray:
        """True where the point's letter is in the northern hemisphere."""
        return northern_from(self.letter)

    @property
    def epsg(self) -> np.ndarray:
        """The EPSG code of each point's UTM CRS (int32)."""
        return utm_epsg(self.zone, self.northern)


def _as_float(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def _reason(lat: float, lon: float) -> str | None:
    """Why one (lat, lon) cannot be converted, or None if it can."""
    parts = []
    if np.isnan(lat):
        parts.append("lat is NaN")
    elif not LAT_MIN <= lat <= LAT_MAX:
        parts.append(f"lat {_fmt(lat)} outside UTM range [{LAT_MIN:g}, {LAT_MAX:g}]")
    if np.isnan(lon):
        parts.append("lon is NaN")
    elif not LON_MIN <= lon <= LON_MAX:
        parts.append(f"lon {_fmt(lon)} outside [{LON_MIN:g}, {LON_MAX:g}]")
    return "; ".join(parts) or None


def _valid_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    # NaN fails every comparison, so it lands in the invalid set too.
    ok = lat >= LAT_MIN
    ok &= lat <= LAT_MAX
    ok &= lon >= LON_MIN
    ok &= lon <= LON_MAX
    return ok


def invalid_latlon_reasons(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Say, per point, why it cannot be converted to UTM.

    Returns an object array of the broadcast shape: None where the point is valid,
    otherwise a short reason such as ``"lat is NaN"``,
    ``"lat 85.1 outside UTM range [-80, 84]"`` or ``"lon 190 outside [-180, 180]"``
    (two reasons are joined with ``"; "``).
    """
    lat, lon = np.broadcast_arrays(_as_float(lat), _as_float(lon))
    out = np.full(lat.shape, None, dtype=object)
    flat_out = out.reshape(-1)
    flat_lat, flat_lon = lat.reshape(-1), lon.reshape(-1)
    for i in np.flatnonzero(~_valid_mask(flat_lat, flat_lon)):
        flat_out[i] = _reason(float(flat_lat[i]), float(flat_lon[i]))
    return out


def _raise_if_invalid(lat: np.ndarray, lon: np.ndarray) -> None:
    """Raise GeoError naming the count and the first bad point; lat/lon are 1-D."""
    bad = np.flatnonzero(~_valid_mask(lat, lon))
    if bad.size:
        i = int(bad[0])
        raise GeoError(
            f"{bad.size} of {lat.size} points cannot be converted to UTM; first at index {i} "
            f"(lat={_fmt(lat[i])}, lon={_fmt(lon[i])}): {_reason(float(lat[i]), float(lon[i]))}. "
            f"UTM covers lat [{LAT_MIN:g}, {LAT_MAX:g}] and lon [{LON_MIN:g}, {LON_MAX:g}]: "
            "drop or fix these points first (invalid_latlon_reasons lists them all)."
        )


def _zone_and_band(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zone (int16) and letter-band index (intp) of valid 1-D points, as ``utm`` computes them."""
    # Normalise into [-180, 180) with the same float operations as utm, so points within
    # rounding distance of a zone edge fall on the same side.
    lon_n = np.mod(lon, 360.0)
    lon_n += 540.0
    np.mod(lon_n, 360.0, out=lon_n)
    lon_n -= 180.0
    z = lon_n + 180.0
    z /= 6.0
    np.floor(z, out=z)
    zone = z.astype(np.int16)
    zone %= 60  # 360/6 cannot round up to 60 after normalisation; keep it safe anyway
    zone += 1

    # Norway (56..64 N) and Svalbard (72..84 N): only look at points that far north.
    north = np.flatnonzero(lat >= 56.0)
    if north.size:
        la, lo = lat[north], lon_n[north]
        special = np.zeros(north.size, dtype=np.int16)
        special[(la < 64.0) & (lo >= 3.0) & (lo < 12.0)] = 32
        svalbard = la >= 72.0  # la <= 84 already checked
        for lo_max, svalbard_zone in ((9.0, 31), (21.0, 33), (33.0, 35), (42.0, 37)):
            pick = svalbard & (lo >= 0.0) & (lo < lo_max) & (special == 0)
            special[pick] = svalbard_zone
        hit = special > 0
        zone[north[hit]] = special[hit]

    # int(lat + 80) >> 3 in utm; division by 8 is exact, so this is the same band.
    b = lat + 80.0
    b /= 8.0
    np.floor(b, out=b)
    band = b.astype(np.intp)
    return zone, band


_EDGE = 1e-9  # degrees; far wider than the ~1e-13 rounding of utm's longitude normalisation


def _single_cell(lat: np.ndarray, lon: np.ndarray) -> tuple[int, int] | None:
    """(zone, band) if all valid 1-D points provably share one zone and band, else None.

    Four reductions replace the per-point work in the common case of a city-sized data
    set. The per-point rule is monotonic in lon and lat away from lon = 180 and the
    Norway/Svalbard boxes, so equal corners imply equal points.
    """
    if lat.size == 0:
        return None
    lat_lo, lat_hi, lon_lo, lon_hi = lat.min(), lat.max(), lon.min(), lon.max()  # NaN propagates
    if not (LAT_MIN <= lat_lo and lat_hi <= LAT_MAX and LON_MIN <= lon_lo and lon_hi < LON_MAX - _EDGE):
        return None
    norway = lat_hi >= 56.0 and lat_lo < 64.0 and lon_hi >= 3.0 - _EDGE and lon_lo < 12.0 + _EDGE
    svalbard = lat_hi >= 72.0 and lon_hi >= -_EDGE and lon_lo < 42.0 + _EDGE
    if norway or svalbard:
        return None
    zone, band = _zone_and_band(np.array([lat_lo, lat_hi]), np.array([lon_lo, lon_hi]))
    if zone[0] != zone[1] or band[0] != band[1]:
        return None
    return int(zone[0]), int(band[0])


def utm_zone_letter(lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return the UTM zone (int16, 1..60) and letter (``<U1``) of each point.

    Zone = floor((lon + 180) / 6) mod 60 + 1 after normalising lon into [-180, 180), so
    lon = 180 is zone 1, as in ``utm``; Norway's 32V (56 <= lat < 64, 3 <= lon < 12) and
    Svalbard's 31X/33X/35X/37X (72 <= lat <= 84, lon 0-9/9-21/21-33/33-42) are honoured.
    Letter = LETTERS[floor((lat + 80) / 8)]. Raises GeoError for invalid points.
    """
    lat, lon = np.broadcast_arrays(_as_float(lat), _as_float(lon))
    shape = lat.shape
    flat_lat, flat_lon = lat.reshape(-1), lon.reshape(-1)
    _raise_if_invalid(flat_lat, flat_lon)
    zone, band = _zone_and_band(flat_lat, flat_lon)
    return zone.reshape(shape), _LETTER_ARRAY[band].reshape(shape)


def _check_zone(zone: ArrayLike) -> np.ndarray:
    z = np.asarray(zone)
    if z.dtype.kind not in "iuf":
        raise GeoError(f"UTM zones must be integers 1..60, got an array of dtype {z.dtype}.")
    bad = np.flatnonzero(~((z >= 1) & (z <= 60) & (z == np.floor(z))))
    if bad.size:
        i = int(bad[0])
        raise GeoError(
            f"{bad.size} UTM zone(s) outside the integers 1..60; first at index {i}: "
            f"{z.reshape(-1)[i]!r}. Check the zone column."
        )
    return z.astype(np.int16)


UTM_EPSG_NORTH, UTM_EPSG_SOUTH = 32600, 32700
"""EPSG code of UTM zone z: UTM_EPSG_NORTH + z (WGS 84 / UTM zone zN) or UTM_EPSG_SOUTH + z (zS)."""


def utm_epsg(zone: ArrayLike, northern: ArrayLike) -> np.ndarray:
    """EPSG code (int32) of each UTM coordinate system: 32600 + zone if northern, else 32700 + zone.

    The one definition of the key (SQL: ``utm_epsg(zone, letter)`` in ``sql/core/_macros.sql``).
    ``northern`` is a bool array or the band letters (``"N"`` and later, case-insensitive, is
    northern, as in ``utm`` and MGRS). Raises GeoError for a zone outside 1..60 or an unknown letter.

    >>> utm_epsg(10, "S").item(), utm_epsg(56, False).item()
    (32610, 32756)
    """
    z = _check_zone(zone)
    z, north = np.broadcast_arrays(z, northern_from(northern))
    return np.where(north, UTM_EPSG_NORTH, UTM_EPSG_SOUTH).astype(np.int32) + z


def utm_epsg_zone(epsg: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`utm_epsg`: ``(zone, northern)`` (int16 1..60, bool) of each EPSG code.

    Raises GeoError for a code that is not 32601..32660 or 32701..32760.
    """
    code = np.asarray(epsg)
    if code.dtype.kind not in "iu":
        raise GeoError(f"UTM EPSG codes must be integers, got an array of dtype {code.dtype}.")
    zone = code % 100
    ok = (zone >= 1) & (zone <= 60) & ((code - zone == UTM_EPSG_NORTH) | (code - zone == UTM_EPSG_SOUTH))
    bad = np.flatnonzero(~ok)
    if bad.size:
        i = int(bad[0])
        raise GeoError(
            f"{bad.size} code(s) are not UTM EPSG codes (32601..32660 north, 32701..32760 south); "
            f"first at index {i}: {code.reshape(-1)[i]!r}."
        )
    return zone.astype(np.int16), code < UTM_EPSG_SOUTH


def _code_epsg(code: int) -> int:
    """EPSG code of an internal group code, (zone - 1) + 60 * southern."""
    return int(utm_epsg(code % 60 + 1, code < 60))


PARALLEL_MIN_POINTS = 1_000_000
"""Blocks at least this large are split over threads (PROJ releases the GIL); smaller
blocks, such as a crop shard's, stay on the calling thread so process pools do not
oversubscribe the cores."""

_local = threading.local()


def _thread_transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    """One transformer per thread and CRS pair (each thread keeps its own PROJ context)."""
    cache = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (src_epsg, dst_epsg)
    if key not in cache:
        cache[key] = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
    return cache[key]


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _transform_block(code: int, x: np.ndarray, y: np.ndarray, to_utm: bool) -> None:
    """Transform one zone's contiguous x/y arrays in place (threaded for large blocks)."""
    epsg = _code_epsg(code)
    src, dst = (WGS84_EPSG, epsg) if to_utm else (epsg, WGS84_EPSG)
    threads = _threads() if x.size >= PARALLEL_MIN_POINTS else 1

    def run(lo: int, hi: int) -> None:
        _thread_transformer(src, dst).transform(x[lo:hi], y[lo:hi], inplace=True, errcheck=True)

    try:
        if threads == 1:
            run(0, x.size)
        else:
            bounds = np.linspace(0, x.size, threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, bounds[:-1], bounds[1:]))
    except ProjError as err:
        raise GeoError(f"PROJ failed to transform {x.size} point(s) from EPSG:{src} to EPSG:{dst}: {err}") from err


def _transform_grouped(x: np.ndarray, y: np.ndarray, code: np.ndarray, to_utm: bool) -> None:
    """Transform 1-D x/y (owned, contiguous float64) in place, each point in its own zone."""
    if x.size == 0:
        return
    lo, hi = int(code.min()), int(code.max())
    if lo == hi:  # one zone: no sorting, no copies
        _transform_block(lo, x, y, to_utm)
        return
    order = np.argsort(code, kind="stable")  # radix sort on uint8
    xs, ys = x[order], y[order]
    counts = np.bincount(code, minlength=_N_CODES)
    stops = np.cumsum(counts)
    for c in np.flatnonzero(counts):
        stop = int(stops[c])
        start = stop - int(counts[c])
        _transform_block(int(c), xs[start:stop], ys[start:stop], to_utm)
    x[order] = xs
    y[order] = ys


def latlon_to_utm(lat: ArrayLike, lon: ArrayLike) -> UTM:
    """Convert WGS84 lat/lon (degrees) to UTM, each point in its own zone.

    Raises GeoError, naming how many points are bad and the first one with its reason,
    if any point is NaN or outside lat [-80, 84] / lon [-180, 180].

    >>> u = latlon_to_utm(37.77166, -122.50995)
    >>> int(u.zone), str(u.letter), round(float(u.east), 2)
    (10, 'S', 543158.28)
    """
    lat, lon = np.broadcast_arrays(_as_float(lat), _as_float(lon))
    shape = lat.shape
    flat_lat, flat_lon = lat.reshape(-1), lon.reshape(-1)
    east = np.array(flat_lon, dtype=np.float64, order="C")  # copies: transformed in place
    north = np.array(flat_lat, dtype=np.float64, order="C")
    cell = _single_cell(flat_lat, flat_lon)
    if cell is not None:
        zone_1, band_1 = cell
        _transform_block(zone_1 - 1 + (60 if band_1 < _FIRST_NORTH_BAND else 0), east, north, to_utm=True)
        zone = np.full(shape, zone_1, dtype=np.int16)
        letter = np.full(shape, LETTERS[band_1], dtype="<U1")
    else:
        _raise_if_invalid(flat_lat, flat_lon)
        zone, band = _zone_and_band(flat_lat, flat_lon)
        code = zone.astype(np.uint8)
        code -= 1
        code[band < _FIRST_NORTH_BAND] += 60
        _transform_grouped(east, north, code, to_utm=True)
        zone, letter = zone.reshape(shape), _LETTER_ARRAY[band].reshape(shape)
    return UTM(east=east.reshape(shape), north=north.reshape(shape), zone=zone, letter=letter)


def northern_from(letter_or_northern: ArrayLike) -> np.ndarray:
    """The hemisphere convention: band letters N..X (any case) are northern, C..M southern; bools pass."""
    arr = np.asarray(letter_or_northern)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "USO":
        letters = np.char.upper(arr.astype(str))
        bad = np.flatnonzero(~np.isin(letters, VALID_LETTERS))
        if bad.size:
            i = int(bad[0])
            raise GeoError(
                f"{bad.size} UTM letter(s) not in {''.join(VALID_LETTERS)}; first at index {i}: "
                f"{letters.reshape(-1)[i]!r}. Pass the zone letters or a bool `northern` array."
            )
        return letters >= "N"
    raise GeoError(
        f"letter_or_northern must hold UTM letters or booleans, got dtype {arr.dtype}. "
        "Pass the zone letters or a bool `northern` array."
    )


def utm_to_latlon(
    east: ArrayLike, north: ArrayLike, zone: ArrayLike, letter_or_northern: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Convert UTM (metres) back to WGS84 ``(lat, lon)`` in degrees.

    ``letter_or_northern`` is either the zone letters (``"N"`` and later: northern
    hemisphere) or a bool array ``northern``. Raises GeoError for a zone outside 1..60,
    an unknown letter or a non-finite coordinate.
    """
    z = _check_zone(zone)
    northern = northern_from(letter_or_northern)
    e, n, z, northern = np.broadcast_arrays(_as_float(east), _as_float(north), z, northern)
    shape = e.shape
    x = np.array(e, dtype=np.float64, order="C").reshape(-1)
    y = np.array(n, dtype=np.float64, order="C").reshape(-1)
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        i = int(bad[0])
        raise GeoError(
            f"{bad.size} UTM point(s) have a non-finite east/north; first at index {i}: "
            f"east={_fmt(x[i])}, north={_fmt(y[i])}. Drop or fix them first."
        )
    code = z.reshape(-1).astype(np.uint8)
    code -= 1
    code[~northern.reshape(-1)] += 60
    _transform_grouped(x, y, code, to_utm=False)
    return y.reshape(shape), x.reshape(shape)


def utm_distance(
    e1: ArrayLike, n1: ArrayLike, z1: ArrayLike, e2: ArrayLike, n2: ArrayLike, z2: ArrayLike
) -> np.ndarray:
    """Euclidean distance in metres between UTM points; inf where the zones differ."""
    d = np.hypot(_as_float(e1) - _as_float(e2), _as_float(n1) - _as_float(n2))
    return np.where(np.asarray(z1) == np.asarray(z2), d, np.inf)


def wrap_heading(h: ArrayLike) -> np.ndarray:
    """Wrap headings (degrees clockwise from north) into [0, 360); NaN and inf give NaN.

    A tiny negative heading such as -1e-14 would wrap to 360.0 in float64; it is
    returned as 0.0, the representable angle nearest to it on the circle.
    """
    h = _as_float(h)
    with np.errstate(invalid="ignore"):
        w = np.mod(h, 360.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    return np.where(w >= 360.0, 0.0, w)


def heading_difference(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Smallest absolute angle in degrees between headings a and b, in [0, 180]."""
    d = np.abs(wrap_heading(a) - wrap_heading(b))
    return np.minimum(d, 360.0 - d)
