"""The synthetic city's geometry: streets, 2.5-D buildings and per-year occluders.

This module builds the layout (:func:`make_scene`); the objects and the hash live in
:mod:`vgdata.synth.geometry`, the occluders in :mod:`vgdata.synth.occluders`; all are
importable from here.

Frame and units
---------------
A local frame in metres: ``x`` east and ``y`` north of the city origin. The city covers the
square ``[-size_m / 2, size_m / 2]^2``. Headings are degrees clockwise from north (90 = east),
as everywhere in the project: the direction ``(dx, dy)`` has heading ``atan2(dx, dy)``.

Layout (:func:`make_scene`)
---------------------------
* A street grid whose lines run edge to edge of the square: north-south streets (``p0`` at the
  south edge, ``p1`` at the north edge) and east-west streets (``p0`` west, ``p1`` east), spaced
  so that the blocks between kerbs are 50-110 m; every street is 13-16.5 m kerb to kerb with
  2.5-3.2 m sidewalks on both sides.
* One diagonal street (two from 800 m up) through the central area at 30-60 degrees to the grid,
  14-17 m wide, cutting the blocks it crosses.
* Buildings fill each block along its perimeter (rows along the streets, 10-20 m deep, lots 8-30 m
  wide, sometimes an alley between two lots), set back 0.3-1.5 m behind the sidewalk, clipped
  against the diagonal's corridor, 6-40 m tall. Footprints are convex, counter-clockwise, and never
  closer than ``width / 2 + sidewalk`` to a street centre line.

Occluders (:func:`occluders`)
-----------------------------
Parked cars, vans and trucks in the kerb lanes, trees on the sidewalks and street-light poles.
Cars change every year; trees mostly stay (a few are planted or removed per year, crowns vary);
poles never change. All of it is a pure function of ``(scene.seed, year)`` (and the layout).

Determinism
-----------
Layout randomness comes from ``numpy.random.Generator(PCG64)`` seeded by
``SeedSequence([seed, tag])``; per-object attributes (occluders, facade textures) come from the
integer hash :func:`mix` of ``(seed, purpose tag, indices...)``. Nothing uses global RNG state,
time or Python's salted ``hash()``: the same seed gives the same scene in any process and order.
"""

from __future__ import annotations

import math

import numpy as np

from vgdata.synth.geometry import Building, Occluder, Scene, Street, mix, unit
from vgdata.synth.occluders import occluders

__all__ = [
    "Building",
    "Occluder",
    "Scene",
    "Street",
    "make_scene",
    "mix",
    "occluders",
    "unit",
]

# Purpose tags for the integer hash (any distinct integers; never change them: they fix the city).
_TAG_LAYOUT = 0x5C3E01


# ---------------------------------------------------------------- layout


def _grid_lines(rng: np.random.Generator, half: float) -> list[tuple[float, float, float]]:
    """Parallel street centre lines across ``[-half, half]``: (position, width, sidewalk) each.

    Blocks between the sidewalks of neighbouring lines are 50-110 m; the first line lies 25-70 m
    inside the square, the last at least 20 m inside it; there is always at least one line.
    """

    def draw() -> tuple[float, float]:
        return float(np.round(rng.uniform(13.0, 16.5), 2)), float(np.round(rng.uniform(2.5, 3.2), 2))

    lines: list[tuple[float, float, float]] = []
    pos = float(-half + rng.uniform(25.0, 70.0))
    width, sidewalk = draw()
    while True:
        lines.append((float(np.round(pos, 2)), width, sidewalk))
        width2, sidewalk2 = draw()
        nxt = pos + width / 2 + sidewalk + float(rng.uniform(50.0, 110.0)) + width2 / 2 + sidewalk2
        if nxt > half - 20.0:
            return lines
        pos, width, sidewalk = nxt, width2, sidewalk2


def _clip_line_to_square(px: float, py: float, ux: float, uy: float, half: float) -> tuple:
    """End points of the line through (px, py) along (ux, uy) inside the square."""
    lo, hi = -math.inf, math.inf
    for p, u in ((px, ux), (py, uy)):
        if abs(u) < 1e-12:
            continue
        a, b = (-half - p) / u, (half - p) / u
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    return (px + ux * lo, py + uy * lo), (px + ux * hi, py + uy * hi)


def _split(rng: np.random.Generator, length: float, lo: float = 8.0, hi: float = 30.0) -> list[tuple[float, float]]:
    """Cut ``[0, length]`` into lots ``lo..hi`` wide (the last may take a narrow remainder),
    with a 1.5-4 m alley after a lot now and then."""
    if length < lo:
        return [(0.0, length)] if length >= 5.0 else []
    out: list[tuple[float, float]] = []
    pos = 0.0
    while length - pos >= lo:
        w = float(rng.uniform(lo, hi))
        if length - pos - w < lo:
            w = length - pos
        out.append((pos, pos + w))
        pos += w
        if pos < length and rng.random() < 0.15:
            pos += float(rng.uniform(1.5, 4.0))
    return out


def _block_lots(rng: np.random.Generator, ax: float, bx: float, ay: float, by: float) -> list[tuple]:
    """Rectangles (x0, y0, x1, y1) lining the perimeter of the block [ax, bx] x [ay, by]."""
    bw, bh = bx - ax, by - ay
    if bw < 5.0 or bh < 5.0:
        return []
    rects = []
    d_s, d_n = rng.uniform(10.0, 20.0), rng.uniform(10.0, 20.0)
    d_w, d_e = rng.uniform(10.0, 20.0), rng.uniform(10.0, 20.0)
    horizontal_rows = bw >= bh  # rows along the longer sides, columns along the shorter ones
    if horizontal_rows:
        if bh >= d_s + d_n + 6.0:
            rows = [(ay, ay + d_s), (by - d_n, by)]
            mid = (ay + d_s + 1.0, by - d_n - 1.0)
        else:
            rows, mid = [(ay, by)], None
        for y0, y1 in rows:
            rects += [(ax + a, y0, ax + b, y1) for a, b in _split(rng, bw)]
        if mid is not None and mid[1] - mid[0] >= 8.0:
            cols = [(ax, ax + d_w), (bx - d_e, bx)] if bw >= d_w + d_e + 6.0 else [(ax, bx)]
            for x0, x1 in cols:
                rects += [(x0, mid[0] + a, x1, mid[0] + b) for a, b in _split(rng, mid[1] - mid[0])]
    else:
        if bw >= d_w + d_e + 6.0:
            cols = [(ax, ax + d_w), (bx - d_e, bx)]
            mid = (ax + d_w + 1.0, bx - d_e - 1.0)
        else:
            cols, mid = [(ax, bx)], None
        for x0, x1 in cols:
            rects += [(x0, ay + a, x1, ay + b) for a, b in _split(rng, bh)]
        if mid is not None and mid[1] - mid[0] >= 8.0:
            rows = [(ay, ay + d_s), (by - d_n, by)] if bh >= d_s + d_n + 6.0 else [(ay, by)]
            for y0, y1 in rows:
                rects += [(mid[0] + a, y0, mid[0] + b, y1) for a, b in _split(rng, mid[1] - mid[0])]
    return rects


def make_scene(seed: int, size_m: float = 400.0) -> Scene:
    """A city of ``size_m`` x ``size_m`` metres centred on the origin, deterministic from ``seed``.

    See the module docstring for the layout. Streets: the north-south grid streets first (west to
    east), then the east-west ones (south to north), then the diagonal(s).
    """
    import shapely
    from shapely.geometry import LineString, box
    from shapely.geometry.polygon import orient

    seed = int(seed)
    size_m = float(size_m)
    if not size_m >= 100.0:
        raise ValueError(f"size_m must be >= 100, got {size_m}")
    half = size_m / 2
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & (2**63 - 1), _TAG_LAYOUT])))

    xs = _grid_lines(rng, half)
    ys = _grid_lines(rng, half)
    streets = [Street((x, -half), (x, half), w, sw) for x, w, sw in xs]
    streets += [Street((-half, y), (half, y), w, sw) for y, w, sw in ys]
    n_diag = 1 if size_m < 800 else 2
    for k in range(n_diag):
        px, py = (float(v) for v in rng.uniform(-size_m / 8, size_m / 8, size=2))
        angle = float(rng.uniform(30.0, 60.0)) + (90.0 if (k + int(rng.integers(2))) % 2 else 0.0)
        ux, uy = math.cos(math.radians(angle)), math.sin(math.radians(angle))  # angle from east
        p0, p1 = _clip_line_to_square(px, py, ux, uy, half)
        p0 = (float(np.round(p0[0], 2)), float(np.round(p0[1], 2)))
        p1 = (float(np.round(p1[0], 2)), float(np.round(p1[1], 2)))
        streets.append(
            Street(p0, p1, float(np.round(rng.uniform(14.0, 17.0), 2)), float(np.round(rng.uniform(2.6, 3.2), 2)))
        )
    diagonals = streets[len(xs) + len(ys) :]

    # Block bounds between consecutive grid lines (the square's edges are lines without street).
    def bounds(lines):
        edges = [(-half, 0.0)] + [(p, w / 2 + sw) for p, w, sw in lines] + [(half, 0.0)]
        return [(a + ha, b - hb) for (a, ha), (b, hb) in zip(edges[:-1], edges[1:], strict=True)]

    corridors = []
    for s in diagonals:
        (ux, uy), ext = s.direction, size_m  # extend past the square: no cap notches at its edges
        line = LineString([(s.p0[0] - ux * ext, s.p0[1] - uy * ext), (s.p1[0] + ux * ext, s.p1[1] + uy * ext)])
        corridors.append(line.buffer(s.width / 2 + s.sidewalk + 0.8, cap_style="flat"))
    corridor = shapely.union_all(corridors) if corridors else None

    buildings: list[Building] = []
    for bx0, bx1 in bounds(xs):
        for by0, by1 in bounds(ys):
            setback = float(rng.uniform(0.3, 1.5))
            ax = bx0 + (setback if bx0 > -half else 0.0)
            bx = bx1 - (setback if bx1 < half else 0.0)
            ay = by0 + (setback if by0 > -half else 0.0)
            by = by1 - (setback if by1 < half else 0.0)
            mean_h = float(rng.uniform(9.0, 26.0))
            for x0, y0, x1, y1 in _block_lots(rng, ax, bx, ay, by):
                height = float(np.clip(mean_h * math.exp(rng.normal(0.0, 0.35)), 6.0, 40.0))
                bseed = int(rng.integers(0, 2**62))
                empty = rng.random() < 0.04  # a vacant lot now and then
                poly = box(x0, y0, x1, y1)
                pieces = [poly]
                if corridor is not None and poly.intersects(corridor):
                    diff = poly.difference(corridor)
                    pieces = list(getattr(diff, "geoms", [diff]))
                if empty:
                    continue
                for j, piece in enumerate(pieces):
                    if piece.is_empty or piece.geom_type != "Polygon" or piece.area < 40.0:
                        continue
                    mrr = piece.minimum_rotated_rectangle
                    if mrr.geom_type != "Polygon":
                        continue
                    c = np.asarray(mrr.exterior.coords)[:-1]
                    if min(math.dist(c[0], c[1]), math.dist(c[1], c[2])) < 4.0:
                        continue
                    piece = orient(piece.simplify(0.01), sign=1.0)
                    if piece.convex_hull.area - piece.area > 1e-6 * piece.area:
                        continue  # the renderer relies on convex footprints
                    fp = np.round(np.asarray(piece.exterior.coords, dtype=np.float64)[:-1], 4)
                    buildings.append(Building(fp, round(height, 2), bseed if j == 0 else bseed ^ (j << 40)))
    return Scene(seed=seed, size_m=size_m, streets=streets, buildings=buildings)
