"""The synthetic city's objects and integer hash: :class:`Street`, :class:`Building`, :class:`Occluder`, :class:`Scene`.

Part of :mod:`vgdata.synth.scene` (which builds scenes and re-exports all of this): a local frame
in metres, ``x`` east and ``y`` north of the city origin; headings in degrees clockwise from
north. :func:`mix` / :func:`unit` are the platform- and process-independent hashes every
per-object attribute of the city is drawn from.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

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
