"""What ``vgdata synth`` captures: presets, the local frame, the drives and the query positions.

Part of :mod:`vgdata.synth.generate` (which re-exports these names). Positions are metres
east/north in the scene frame (:class:`Frame` maps them to lat/lon through the origin's UTM
zone), headings degrees clockwise from north, years whole calendar years. Every random
choice is a :func:`rng_for` stream keyed by (seed, purpose, index): a plan is a pure
function of its seed and preset.
"""

from __future__ import annotations

import hashlib
import math
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgdata.errors import UsageError


@dataclass(frozen=True)
class Preset:
    """Sizes of one synthetic dataset."""

    size_m: float
    """Side of the square city, metres."""
    width: int
    """Panorama width in pixels (height = width / 2); SF-XL's is 3328."""
    years: tuple[int, ...]
    """Capture years; every year drives the same streets with a new phase and new occluders."""
    drive_m: float
    """Street length driven per year, metres (the streets nearest the centre first); every year
    drives the same streets."""
    spacing_m: float
    """Metres between consecutive panoramas of one drive."""
    queries_v1: int
    """Flickr-style photos (EXIF GPS, no heading)."""
    queries_v2: int
    """Photos with 6DoF poses."""
    query_pano_width: int
    """Width of the panorama rendered at a query position, from which the photo is cut."""
    test_year: int | None = None
    """The year whose panoramas make the one-year test database (``vgdata split-test --year``);
    every query is placed within 30 m of one of its panoramas. None: the last year."""
    drive_margin_m: float = 0.0
    """Metres left undriven at both ends of every street (the city's edge, with nothing beyond)."""
    test_spacing_m: float | None = None
    """Metres between panoramas in the test year (None: ``spacing_m``). The chance level of the
    one-year test database (positives within 25 m / its size) does not depend on it, its cost does."""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(200, 512, (2013, 2017), 60, 5.0, 6, 4, 1024),
    # A neighbourhood of a 500 m city: the 6 streets nearest its centre (2 north-south, 3 east-west,
    # the diagonal; 420-538 m each, 40 m of either end left undriven), 2.64 km driven in each of 5 years:
    # 2013 (SF-XL's test year) a panorama every 12.5 m for the one-year test database, the others every
    # 6.25 m. A query has ~50 m of street within 25 m against the test year's ~2.6 km: chance at R@1
    # ~2-3% whatever the spacing. 640 px panoramas give 98 px strip crops (the demo trains at 96 px):
    # what keeps `make demo` within 12 minutes on 2 cores. Classes of the defaults (M=10, alpha=30) get
    # ~7 images (4 years x 1.6 + 0.8), hence the demo's --min-images-per-class 5 (EigenPlaces' default).
    "demo": Preset(
        500,
        640,
        (2009, 2011, 2013, 2015, 2017),
        2638,
        6.25,
        320,
        320,
        1024,
        test_year=2013,
        drive_margin_m=40,
        test_spacing_m=12.5,
    ),  # fmt: skip
    "city": Preset(1200, 3328, (2009, 2011, 2013, 2015, 2017, 2019, 2021), 2400, 3.0, 1000, 598, 3328),
    # Footprint presets (vgdata.synth.footprints): the city comes from real building polygons, so
    # size_m is unused (the data's extent sets it). 4 years over the 1.6 km of street nearest the
    # centre, a panorama every 8 m (12.5 m in the test year 2015): ~680 panoramas at 640 px.
    "prague": Preset(0, 640, (2013, 2015, 2017, 2019), 1600, 8.0, 120, 120, 1024, test_year=2015, test_spacing_m=12.5),
    "helsinki": Preset(
        0, 640, (2013, 2015, 2017, 2019), 1600, 8.0, 120, 120, 1024, test_year=2015, test_spacing_m=12.5
    ),
}
FOOTPRINT_PRESET_NAMES = ("prague", "helsinki")
"""Presets whose buildings and streets come from a real data set (their extra), not from make_scene."""


# ---------------------------------------------------------------- randomness and ids


def rng_for(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """An independent, reproducible stream for (seed, purpose, index)."""
    digest = hashlib.blake2b(f"{seed}/{purpose}/{index}".encode(), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "big")))


def pano_id(seed: int, index: int) -> str:
    """A 22-character id like Street View's, stable for (seed, index)."""
    digest = hashlib.blake2b(f"pano/{seed}/{index}".encode(), digest_size=16).digest()
    return urlsafe_b64encode(digest).decode().rstrip("=")


# ---------------------------------------------------------------- the local frame


@dataclass(frozen=True)
class Frame:
    """The scene's metres east/north of the origin, tied to the origin's UTM zone."""

    east0: float
    north0: float
    zone: int
    letter: str

    @classmethod
    def at(cls, lat: float, lon: float) -> Frame:
        from vgdata import geo

        bad = geo.invalid_latlon_reasons(np.array([lat]), np.array([lon]))[0]
        if bad is not None:
            raise UsageError(f"--origin {lat},{lon}: {bad}")
        u = geo.latlon_to_utm(np.array([lat]), np.array([lon]))
        return cls(float(u.east[0]), float(u.north[0]), int(u.zone[0]), str(u.letter[0]))

    def latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from vgdata import geo

        zone = np.full(np.shape(x), self.zone)
        letter = np.full(np.shape(x), self.letter)
        return geo.utm_to_latlon(self.east0 + np.asarray(x), self.north0 + np.asarray(y), zone, letter)


# ---------------------------------------------------------------- capture plan


@dataclass(frozen=True)
class Capture:
    """One panorama to render: position (local metres), heading (degrees), year, month."""

    index: int
    x: float
    y: float
    heading: float
    year: int
    month: int


def bearing(dx: float, dy: float) -> float:
    """Degrees clockwise from (grid) north of the direction (dx east, dy north), in [0, 360)."""
    return math.degrees(math.atan2(dx, dy)) % 360.0


def driven_streets(streets: list, preset: Preset) -> list[tuple[Any, float, float]]:
    """The streets driven every year, as ``(street, start, stop)`` metres from ``p0``.

    Nearest the centre first, until ``drive_m`` metres; ``drive_margin_m`` is left undriven at
    both ends of every street (the last one chosen is cut short to make up ``drive_m``).
    """
    ordered = sorted(streets, key=lambda s: (math.hypot((s.p0[0] + s.p1[0]) / 2, (s.p0[1] + s.p1[1]) / 2), s.p0))
    chosen, total = [], 0.0
    margin = preset.drive_margin_m
    for s in ordered:
        if total >= preset.drive_m:
            break
        length = math.dist(s.p0, s.p1) - 2 * margin
        if length <= 0:
            continue
        chosen.append((s, margin, margin + min(length, preset.drive_m - total)))
        total += length
    return chosen


def plan_captures(
    streets: list, preset: Preset, seed: int, blocked: Callable[[float, float], bool] | None = None
) -> list[Capture]:
    """Drives: every year, each chosen street from p0 towards p1, a panorama every spacing_m.

    The car keeps to the right-hand lane, clear of the parked cars (3.6 m inside the kerb, at
    least 1.5 m right of the centre line), with a new start phase, ~0.3 m lateral jitter and
    ~1.5 degrees heading jitter per year. ``blocked(x, y)`` (footprint cities): positions where it
    is true (inside or next to a building) are skipped.
    """
    captures: list[Capture] = []
    for year in preset.years:
        rng = rng_for(seed, "drive", year)
        month = int(rng.integers(1, 13))
        for street, start, stop in driven_streets(streets, preset):
            (x0, y0), (x1, y1) = street.p0, street.p1
            full = math.dist(street.p0, street.p1)
            ux, uy = (x1 - x0) / full, (y1 - y0) / full
            rx, ry = uy, -ux  # right of the travel direction
            heading = bearing(ux, uy)
            spacing = preset.spacing_m
            if year == test_year(preset) and preset.test_spacing_m is not None:
                spacing = preset.test_spacing_m
            t = start + float(rng.uniform(0, spacing))
            while t <= stop:
                lateral = max(1.5, street.width / 2 - 3.6) + float(rng.normal(0, 0.3))
                heading_jitter = float(rng.normal(0, 1.5))
                px, py = round(x0 + ux * t + rx * lateral, 3), round(y0 + uy * t + ry * lateral, 3)
                if blocked is not None and blocked(px, py):
                    t += spacing
                    continue
                captures.append(
                    Capture(
                        index=len(captures),
                        x=px,
                        y=py,
                        heading=round((heading + heading_jitter) % 360.0, 3),
                        year=year,
                        month=month,
                    )
                )
                t += spacing
    return captures


@dataclass(frozen=True)
class QueryPlan:
    """One query photo: where, which way, what it looks like."""

    kind: str  # "v1" or "v2"
    index: int
    x: float
    y: float
    heading: float
    pitch: float
    roll: float
    fov: float
    size: tuple[int, int]
    year: int
    month: int
    night: bool = False
    grayscale: bool = False
    occluded: bool = False


def test_year(preset: Preset) -> int:
    """The year of the preset's one-year test database (``test_year``, else the last year)."""
    return max(preset.years) if preset.test_year is None else preset.test_year


def plan_queries(
    kind: str,
    n: int,
    captures: list[Capture],
    streets: list,
    preset: Preset,
    seed: int,
    blocked: Callable[[float, float], bool] | None = None,
) -> list[QueryPlan]:
    """Photos taken by the kerb (up to 1 m onto the sidewalk) of a driven street (picked by driven
    length), not on the roadway of a crossing street, 0-30 m from a panorama of the test year,
    looking along the street (either way) or across it, off by a normal 25 degrees clipped to 40.
    ``seed`` is the queries seed. ``blocked(x, y)`` (footprint cities, whose streets are segments,
    not lines across the city): positions where it is true are not taken (the nearest panorama of the
    test year stands in if 20 draws fail), and roadways are tested against the street segments."""
    plans = []
    driven = driven_streets(streets, preset)
    weights = np.array([stop - start for _, start, stop in driven])
    weights /= weights.sum()
    last_year = max(preset.years)
    year = test_year(preset)
    anchors = np.array([(c.x, c.y) for c in captures if c.year == year] or [(c.x, c.y) for c in captures])

    def on_a_roadway(x: float, y: float) -> bool:  # streets run edge to edge: their lines will do
        for s in streets:
            (sx0, sy0), (sx1, sy1) = s.p0, s.p1
            n = math.dist(s.p0, s.p1)
            if blocked is not None:  # segments: the distance to the segment, not to its line
                a = min(max(((x - sx0) * (sx1 - sx0) + (y - sy0) * (sy1 - sy0)) / (n * n), 0.0), 1.0)
                if math.hypot(x - sx0 - a * (sx1 - sx0), y - sy0 - a * (sy1 - sy0)) < s.width / 2 - 1e-6:
                    return True
            elif abs((x - sx0) * (sy1 - sy0) - (y - sy0) * (sx1 - sx0)) / n < s.width / 2 - 1e-6:
                return True
        return False

    for i in range(n):
        rng = rng_for(seed, f"query_{kind}", i)
        street, start, stop = driven[int(rng.choice(len(driven), p=weights))]
        (x0, y0), (x1, y1) = street.p0, street.p1
        full = math.dist(street.p0, street.p1)
        ux, uy = (x1 - x0) / full, (y1 - y0) / full
        side = 1.0 if rng.random() < 0.5 else -1.0
        for _ in range(20):  # a point by the kerb, off the roadways, within 30 m of a panorama of the test year
            t = float(rng.uniform(start, stop))
            # from the kerb edge to 1 m onto the sidewalk (the parking lane has parked cars in it)
            lateral = side * (street.width / 2 + float(rng.uniform(0.0, 1.0)))
            x, y = x0 + ux * t + uy * lateral, y0 + uy * t - ux * lateral
            if np.hypot(anchors[:, 0] - x, anchors[:, 1] - y).min() <= 30.0 and not on_a_roadway(x, y):
                if blocked is None or not blocked(x, y):
                    break
        else:
            if blocked is not None and blocked(x, y):
                x, y = (float(v) for v in anchors[np.argmin(np.hypot(anchors[:, 0] - x, anchors[:, 1] - y))])
        along = bearing(ux, uy)
        # along the street either way, or across it (the facades opposite); never at the facade on
        # the photographer's own side, 1-4 m away, which would fill the photo with one wall.
        # side +1 is the right of (ux, uy), whose bearing is along + 90, so across is along - 90 * side.
        look = {0: along, 1: (along + 180) % 360, 2: (along - 90 * side) % 360}[int(rng.integers(3))]
        heading = (look + float(np.clip(rng.normal(0, 25), -40, 40))) % 360.0
        aspect = [(4, 3), (3, 4), (16, 9), (1, 1)][int(rng.integers(4))]
        long_side = int(rng.integers(400, 720))
        size = (long_side, round(long_side * aspect[1] / aspect[0]))
        if aspect[1] > aspect[0]:
            size = (round(long_side * aspect[0] / aspect[1]), long_side)
        v1 = kind == "v1"
        roll = 0.0 if v1 else round(float(rng.normal(0, 2.0)), 2)
        plans.append(
            QueryPlan(
                kind=kind,
                index=i,
                x=round(x, 3),
                y=round(y, 3),
                heading=round(heading, 2),
                pitch=round(float(rng.uniform(-5, 15)), 2),
                roll=roll,
                fov=round(float(rng.uniform(45, 85)), 1),
                size=size,
                year=int(rng.choice([*preset.years, last_year + 1])),
                month=int(rng.integers(1, 13)),
                night=v1 and rng.random() < 0.15,
                grayscale=v1 and rng.random() < 0.15,
                occluded=v1 and rng.random() < 0.15,
            )
        )
    return plans
