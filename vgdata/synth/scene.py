"""The synthetic city's geometry: streets, 2.5-D buildings and per-year occluders.

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

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

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
_TAG_CARS = 0xCA2501
_TAG_TREES = 0x72EE01
_TAG_TREE_YEAR = 0x72EE02

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _as_u64(key) -> np.ndarray:
    arr = np.asarray(key)
    if arr.dtype.kind == "f":
        raise TypeError("mix() takes integer keys")
    if arr.dtype != np.uint64:
        arr = arr.astype(np.int64).astype(np.uint64)  # negative ints wrap (two's complement)
    return arr


def mix(*keys) -> np.ndarray:
    """A 64-bit integer hash (splitmix64 chained over the keys), elementwise over broadcast arrays.

    Keys are Python ints or integer arrays (negative values wrap). Returns a ``uint64`` array of
    the broadcast shape (0-d for scalar keys). Platform and process independent.
    """
    parts = [_as_u64(k) for k in keys]
    shape = np.broadcast_shapes(*(p.shape for p in parts)) if parts else ()
    h = np.zeros(shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            z = (h ^ p) + _G
            z = (z ^ (z >> _S30)) * _M1
            z = (z ^ (z >> _S27)) * _M2
            h = z ^ (z >> _S31)
    return h


def unit(*keys) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` from :func:`mix` of the keys (53 bits)."""
    return (mix(*keys) >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)


# ---------------------------------------------------------------- the objects


@dataclass(frozen=True)
class Street:
    """A straight street: centre line from ``p0`` to ``p1`` (metres), ``width`` kerb to kerb.

    ``sidewalk`` (metres) is the width of the sidewalk on each side, beyond the kerb.
    """

    p0: tuple[float, float]
    p1: tuple[float, float]
    width: float
    sidewalk: float = 2.8

    @property
    def length(self) -> float:
        return math.dist(self.p0, self.p1)

    @property
    def direction(self) -> tuple[float, float]:
        """Unit vector from ``p0`` to ``p1``."""
        n = self.length
        return ((self.p1[0] - self.p0[0]) / n, (self.p1[1] - self.p0[1]) / n)

    @property
    def heading(self) -> float:
        """Heading of the direction ``p0 -> p1`` (degrees clockwise from north, [0, 360))."""
        ux, uy = self.direction
        return math.degrees(math.atan2(ux, uy)) % 360.0

    def point(self, along: float, lateral: float = 0.0) -> tuple[float, float]:
        """The point ``along`` metres from ``p0`` and ``lateral`` metres to the right of travel."""
        ux, uy = self.direction
        return (self.p0[0] + ux * along + uy * lateral, self.p0[1] + uy * along - ux * lateral)


@dataclass(frozen=True, eq=False)
class Building:
    """A 2.5-D building: a convex footprint extruded to ``height``.

    ``footprint``: ``(k, 2)`` float array, metres, counter-clockwise, not closed (the last vertex is
    not a copy of the first). ``seed`` drives its facade textures. ``colour``: if given, the facade
    is drawn in this flat RGB colour (no windows, pattern, lighting, fog or repainting), for tests.
    """

    footprint: np.ndarray
    height: float
    seed: int
    colour: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Occluder:
    """Something in front of the facades for one year.

    ``kind``: ``car``, ``van``, ``truck`` (boxes ``length`` x ``width`` with the long axis along
    ``heading``, from the ground to ``height``), ``tree`` (trunk up to ``base``, then a crown of
    diameter ``width`` from ``base`` to ``height``; ``length`` is the trunk diameter) or ``pole``
    (a street light: diameter ``width``, lamp at the top). Metres and degrees; ``colour`` RGB.
    """

    kind: str
    x: float
    y: float
    heading: float
    length: float
    width: float
    height: float
    base: float
    colour: tuple[int, int, int]


@dataclass(eq=False)
class Scene:
    """The city: streets and buildings plus derived facade segment arrays.

    The ``seg_*`` arrays (one entry per footprint edge, building by building, edge ``i`` from vertex
    ``i`` to ``i + 1``) are computed from ``buildings`` at construction: end points, owning
    building, edge index within it, offset of its start along the building's perimeter, length
    and outward unit normal. ``key`` is a content digest used for render caches.
    """

    seed: int
    size_m: float
    streets: list[Street]
    buildings: list[Building]
    seg_x0: np.ndarray = field(init=False, repr=False)
    seg_y0: np.ndarray = field(init=False, repr=False)
    seg_x1: np.ndarray = field(init=False, repr=False)
    seg_y1: np.ndarray = field(init=False, repr=False)
    seg_building: np.ndarray = field(init=False, repr=False)
    seg_edge: np.ndarray = field(init=False, repr=False)
    seg_u0: np.ndarray = field(init=False, repr=False)
    seg_len: np.ndarray = field(init=False, repr=False)
    seg_nx: np.ndarray = field(init=False, repr=False)
    seg_ny: np.ndarray = field(init=False, repr=False)
    heights: np.ndarray = field(init=False, repr=False)
    key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        x0, y0, x1, y1, bi, ei, u0 = [], [], [], [], [], [], []
        for b, bld in enumerate(self.buildings):
            fp = np.asarray(bld.footprint, dtype=np.float64).reshape(-1, 2)
            nxt = np.roll(fp, -1, axis=0)
            lengths = np.hypot(*(nxt - fp).T)
            x0.append(fp[:, 0])
            y0.append(fp[:, 1])
            x1.append(nxt[:, 0])
            y1.append(nxt[:, 1])
            bi.append(np.full(len(fp), b, dtype=np.int64))
            ei.append(np.arange(len(fp), dtype=np.int64))
            u0.append(np.concatenate([[0.0], np.cumsum(lengths)[:-1]]))

        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        self.seg_x0, self.seg_y0 = cat(x0, np.float64), cat(y0, np.float64)
        self.seg_x1, self.seg_y1 = cat(x1, np.float64), cat(y1, np.float64)
        self.seg_building, self.seg_edge = cat(bi, np.int64), cat(ei, np.int64)
        self.seg_u0 = cat(u0, np.float64)
        ex, ey = self.seg_x1 - self.seg_x0, self.seg_y1 - self.seg_y0
        self.seg_len = np.hypot(ex, ey)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Counter-clockwise footprints: the outside is to the right of each edge.
            self.seg_nx = np.where(self.seg_len > 0, ey / self.seg_len, 0.0)
            self.seg_ny = np.where(self.seg_len > 0, -ex / self.seg_len, 0.0)
        self.heights = np.array([float(b.height) for b in self.buildings], dtype=np.float64)

        h = hashlib.blake2b(digest_size=16)
        h.update(repr((int(self.seed), float(self.size_m))).encode())
        for s in self.streets:
            h.update(repr((s.p0, s.p1, s.width, s.sidewalk)).encode())
        for b in self.buildings:
            h.update(np.ascontiguousarray(b.footprint, dtype=np.float64).tobytes())
            h.update(repr((float(b.height), int(b.seed), b.colour)).encode())
        self.key = h.hexdigest()


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


# ---------------------------------------------------------------- occluders

_CAR_COLOURS = np.array(
    [
        (228, 228, 226),
        (24, 25, 28),
        (158, 163, 168),
        (96, 99, 105),
        (150, 26, 28),
        (32, 52, 122),
        (30, 72, 46),
        (192, 178, 142),
        (212, 170, 40),
        (120, 30, 60),
        (60, 110, 150),
    ],
    dtype=np.float64,
)


def _street_arrays(streets: list[Street]) -> dict[str, np.ndarray]:
    p0 = np.array([s.p0 for s in streets], dtype=np.float64).reshape(-1, 2)
    p1 = np.array([s.p1 for s in streets], dtype=np.float64).reshape(-1, 2)
    d = p1 - p0
    length = np.hypot(d[:, 0], d[:, 1])
    u = d / np.maximum(length, 1e-12)[:, None]
    return {
        "p0": p0,
        "u": u,
        "len": length,
        "half": np.array([s.width / 2 for s in streets], dtype=np.float64),
        "sidewalk": np.array([s.sidewalk for s in streets], dtype=np.float64),
    }


def _near_other_street(sa: dict, i: int, px: np.ndarray, py: np.ndarray, margin: float) -> np.ndarray:
    """True where (px, py) is within ``margin`` of another street's sidewalk edge (intersections)."""
    out = np.zeros(px.shape, dtype=bool)
    for j in range(len(sa["len"])):
        if j == i:
            continue
        rx, ry = px - sa["p0"][j, 0], py - sa["p0"][j, 1]
        along = rx * sa["u"][j, 0] + ry * sa["u"][j, 1]
        perp = np.abs(rx * sa["u"][j, 1] - ry * sa["u"][j, 0])
        inside = (along > -margin) & (along < sa["len"][j] + margin)
        out |= inside & (perp < sa["half"][j] + sa["sidewalk"][j] + margin)
    return out


def occluders(scene: Scene, year: int) -> list[Occluder]:
    """Parked vehicles, trees and street-light poles of ``year`` (deterministic).

    * vehicles: 6.5 m parking slots along both kerbs of every street (none near intersections),
      each occupied with a per-year probability of 0.25-0.55, 0.2 m from the kerb; 85 % cars (1.5-1.65 m
      tall, 1.75-1.9 m wide), 12 % vans (1.9-2.3 m, 2 m wide), 3 % trucks (3-3.4 m, 2.4 m wide);
      new cars every year;
    * trees: slots every 9-14 m on both sidewalks, 0.6 m from the kerb; a slot has a tree with
      probability 0.45, and each year ~8 % of the slots flip (planted or removed); crowns 3-5.6 m
      wide, tops 5-8 m, varying a little per year;
    * poles: every 30 m, alternating sides, 0.35 m from the kerb, 6 m tall, the same every year.
    """
    seed, year = int(scene.seed), int(year)
    sa = _street_arrays(scene.streets)
    out: list[Occluder] = []
    p_occ = 0.25 + 0.3 * float(unit(seed, _TAG_CARS, year))
    for i, s in enumerate(scene.streets):
        ux, uy = sa["u"][i]
        heading = s.heading
        length = sa["len"][i]
        for side in (1, -1):  # 1: right of p0 -> p1, -1: left
            # vehicles
            slots = np.arange(8.0, length - 8.0, 6.5)
            k = np.arange(len(slots), dtype=np.int64)
            u = unit(seed, _TAG_CARS, year, i, side, k, 0)
            kind_u = unit(seed, _TAG_CARS, year, i, side, k, 1)
            jit = unit(seed, _TAG_CARS, year, i, side, k, 2) - 0.5
            col_u = unit(seed, _TAG_CARS, year, i, side, k, 3)
            shade = unit(seed, _TAG_CARS, year, i, side, k, 4)
            size_u = unit(seed, _TAG_CARS, year, i, side, k, 5)
            along = slots + jit * 1.2
            car, van = kind_u < 0.85, (kind_u >= 0.85) & (kind_u < 0.97)
            cw = np.where(car, 1.75 + 0.15 * size_u, np.where(van, 2.0, 2.4))
            cl = np.where(car, 4.2 + 0.7 * size_u, np.where(van, 5.0 + 0.5 * size_u, 7.0 + size_u))
            ch = np.where(car, 1.5 + 0.15 * size_u, np.where(van, 1.9 + 0.4 * size_u, 3.0 + 0.4 * size_u))
            lateral = side * (s.width / 2 - cw / 2 - 0.2)
            px = s.p0[0] + ux * along + uy * lateral
            py = s.p0[1] + uy * along - ux * lateral
            keep = (u < p_occ) & ~_near_other_street(sa, i, px, py, 6.0)
            for j in np.flatnonzero(keep):
                kind = "car" if car[j] else ("van" if van[j] else "truck")
                base = _CAR_COLOURS[int(col_u[j] * len(_CAR_COLOURS))] * (0.85 + 0.3 * shade[j])
                out.append(
                    Occluder(
                        kind,
                        round(float(px[j]), 3),
                        round(float(py[j]), 3),
                        heading,
                        round(float(cl[j]), 3),
                        round(float(cw[j]), 3),
                        round(float(ch[j]), 3),
                        0.0,
                        tuple(int(v) for v in np.clip(base, 0, 255)),
                    )
                )
            # trees
            spacing = 9.0 + 5.0 * float(unit(seed, _TAG_TREES, i, side, -1))
            slots = np.arange(6.0 + spacing * float(unit(seed, _TAG_TREES, i, side, -2)), length - 6.0, spacing)
            k = np.arange(len(slots), dtype=np.int64)
            present = unit(seed, _TAG_TREES, i, side, k, 0) < 0.45
            present ^= unit(seed, _TAG_TREE_YEAR, year, i, side, k) < 0.08
            lateral = side * (s.width / 2 + 0.6)
            px = s.p0[0] + ux * slots + uy * lateral
            py = s.p0[1] + uy * slots - ux * lateral
            keep = present & ~_near_other_street(sa, i, px, py, 3.0)
            grow = 1.0 + 0.12 * (unit(seed, _TAG_TREE_YEAR, year, i, side, k, 1) - 0.5)
            for j in np.flatnonzero(keep):
                r = [float(v) for v in unit(seed, _TAG_TREES, i, side, int(k[j]), np.arange(1, 7))]
                crown = (3.0 + 2.6 * r[0]) * grow[j]
                top = (5.0 + 3.0 * r[1]) * grow[j]
                base = 2.2 + 1.3 * r[2]
                green = np.array([40 + 45 * r[3], 88 + 40 * r[4], 30 + 30 * r[5]])
                green *= 0.9 + 0.2 * float(unit(seed, _TAG_TREE_YEAR, year, i, side, int(k[j]), 2))
                out.append(
                    Occluder(
                        "tree",
                        round(float(px[j]), 3),
                        round(float(py[j]), 3),
                        0.0,
                        round(0.25 + 0.2 * r[2], 3),
                        round(crown, 3),
                        round(min(top, 8.0), 3),
                        round(min(base, top - 1.5), 3),
                        tuple(int(v) for v in np.clip(green, 0, 255)),
                    )
                )
        # poles: alternating sides every 30 m
        slots = np.arange(10.0, length - 10.0, 30.0)
        sides = np.where(np.arange(len(slots)) % 2 == 0, 1.0, -1.0)
        lateral = sides * (s.width / 2 + 0.35)
        px = s.p0[0] + ux * slots + uy * lateral
        py = s.p0[1] + uy * slots - ux * lateral
        keep = ~_near_other_street(sa, i, px, py, 1.0)
        for j in np.flatnonzero(keep):
            out.append(
                Occluder(
                    "pole", round(float(px[j]), 3), round(float(py[j]), 3), 0.0, 0.22, 0.22, 6.0, 0.0, (70, 72, 76)
                )
            )
    return out
