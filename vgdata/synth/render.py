"""Ray-cast equirectangular panoramas of the synthetic city (vectorised numpy, one core).

Camera and image conventions (the project's, see ``vgdata.panorama``)
--------------------------------------------------------------------
A ``W x H`` image, ``H = W // 2``. Column ``j`` (centre ``u = j + 0.5``) looks along the azimuth
``heading + (u - W / 2) * 360 / W`` (degrees clockwise from north), row ``i`` (centre
``v = i + 0.5``) at the elevation ``90 - v * 180 / H``. The camera stands at ``(x, y)`` (metres
east/north in the scene frame) ``cam_height`` metres above the ground.

How a panorama is made
----------------------
1. One horizontal ray per column against the facade segments within :data:`FACADE_RADIUS` that face
   the camera: the :data:`FACADE_LAYERS` nearest hits per column (distance ``t``, segment,
   position along it). A facade hit at distance ``t`` covers the elevations with
   ``-cam / t <= tan(el) <= (height - cam) / t``; a pixel shows the nearest hit whose top it is
   under, so taller buildings behind lower ones show above their roofs.
2. Facade texture at (position along the edge, height ``cam + t * tan(el)``): per-building
   colour (repainted in some years), storeys, a window grid centred on each edge, glass that
   mirrors the sky, a door, shop fronts with signs at 3-5 m, a cornice and a surface pattern
   (plain, bricks, siding, pilasters or panels); detail fades to the mean colour when a pixel is
   wider than ~0.5 m, and distance haze blends towards the horizon colour.
3. Ground, for rays below the horizon that reach it (at ``cam / -tan(el)``): road (asphalt, dashed
   centre line), kerb, sidewalk (slabs) or lot, by the distance to the nearest street.
4. Sky for the rest: gradient, sun glow, clouds on a plane (per year), or stars at night.
5. Occluders (parked vehicles, trees, poles of :func:`vgdata.synth.scene.occluders`) as 3-D boxes /
   cylinders / ellipsoidal crowns, the :data:`OCCLUDER_LAYERS` nearest per column, depth-tested
   against the facades.

Year effects: repainted facades, occluders, sun direction, sky and exposure (mild). ``night``:
dark sky with stars, dim facades with a random subset of lit windows, lit shop signs, street
lamps and their light pools on the ground.

Everything is a pure function of the arguments (no global state besides caches keyed by the
scene's content digest), so the same call gives the same bytes in any process.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vgdata.synth.scene import Scene, mix, occluders, unit

__all__ = [
    "FACADE_LAYERS",
    "FACADE_RADIUS",
    "OCCLUDER_LAYERS",
    "OCCLUDER_RADIUS",
    "facade_hits",
    "render_panorama",
    "visible_facade_columns",
]

#: Facade segments farther than this from the camera (metres) are not drawn.
FACADE_RADIUS = 200.0
#: Facade hits kept per column (nearest first): how many buildings can show above each other.
FACADE_LAYERS = 3
#: Occluders farther than this (metres) are not drawn.
OCCLUDER_RADIUS = 90.0
#: Occluder primitives kept per column (nearest first).
OCCLUDER_LAYERS = 3

_TAG_FACADE = 0xFAC401
_TAG_EDGE = 0xED6E01
_TAG_PAINT = 0xA1E701
_TAG_REPAINT = 0xA1E702
_TAG_YEAR = 0x7EA401
_REPAINT_P = 0.15
_REPAINT_YEARS = (1990, 2040)
#: Ground farther than this (metres) is drawn as plain lot colour under the haze.
_GROUND_DETAIL = 600.0

# Facade pixel categories (index into the per-column palette).
_WALL, _TRIM, _GLASS, _FRAME, _DOOR, _SIGN, _LETTER, _LIT, _SHOP = range(9)
_NCAT = 9
# Bits of the per-column facade flags.
_F_WIN, _F_FRAME, _F_MULL, _F_DOOR, _F_SIGN, _F_SHOP, _F_SHOPWIN, _F_LETTER, _F_FLAT = (1 << i for i in range(9))

_CACHE_SIZE = 8
_caches: dict[str, OrderedDict] = {"facades": OrderedDict(), "year": OrderedDict(), "occ": OrderedDict()}


def _cached(kind: str, key, build):
    cache = _caches[kind]
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = build()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in [0, 1]) to RGB in [0, 255], shape (..., 3)."""
    h6 = (np.asarray(h) % 1.0) * 6.0
    c = v * s
    x = c * (1.0 - np.abs(h6 % 2.0 - 1.0))
    m = v - c
    z = np.zeros_like(c)
    sector = np.floor(h6).astype(np.int64) % 6
    r = np.choose(sector, [c, x, z, z, x, c])
    g = np.choose(sector, [x, c, c, x, z, z])
    b = np.choose(sector, [z, z, x, c, c, x])
    return np.stack([r + m, g + m, b + m], axis=-1) * 255.0


def _h32(*keys: np.ndarray) -> np.ndarray:
    """A fast 32-bit integer hash of integer arrays (per-pixel noise, lit windows)."""
    h = np.full(np.broadcast_shapes(*(np.shape(k) for k in keys)), 0x811C9DC5, dtype=np.uint32)
    for k in keys:
        h = (h ^ np.asarray(k).astype(np.uint32)) * np.uint32(0x01000193)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
    return h


def _u32(*keys: np.ndarray) -> np.ndarray:
    """Uniform float32 in [0, 1) from :func:`_h32`."""
    return (_h32(*keys) >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _noise2(fx: np.ndarray, fy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform float32 in [0, 1) per integer lattice cell ``(fx, fy)`` (floats holding integers)."""
    h = fx.astype(np.int32).view(np.uint32) * np.uint32(0x9E3779B1)
    h ^= fy.astype(np.int32).view(np.uint32) * np.uint32(0x85EBCA77)
    h ^= np.uint32(salt * 0x27D4EB2F & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(13)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


# ---------------------------------------------------------------- per-scene facade parameters


@dataclass
class _Facades:
    """Facade parameters: per building (``b_*``) and per footprint edge (``e_*``)."""

    b_gh: np.ndarray  # ground-floor height
    b_fh: np.ndarray  # upper storey height
    b_sill: np.ndarray  # window bottom above the storey's floor
    b_wh: np.ndarray  # window height
    b_ww: np.ndarray  # window width
    b_sx: np.ndarray  # window spacing
    b_glass: np.ndarray  # (nb, 3)
    b_door: np.ndarray  # (nb, 3)
    b_sign: np.ndarray  # (nb, 3)
    b_sign_z: np.ndarray  # (nb, 2) bottom, top of the shop sign
    b_shop: np.ndarray  # bool
    b_shop_sp: np.ndarray  # shop window spacing
    b_pattern: np.ndarray  # int 0..4 (5 = none)
    b_p1: np.ndarray
    b_p2: np.ndarray
    b_amp: np.ndarray
    b_cornice: np.ndarray
    b_lit: np.ndarray  # fraction of windows lit at night
    b_hash: np.ndarray  # uint32 per building, for pixel noise
    b_flat: np.ndarray  # bool: flat test colour
    b_flat_rgb: np.ndarray  # (nb, 3)
    e_nwin: np.ndarray
    e_off: np.ndarray
    e_door_c: np.ndarray  # NaN: no door
    e_door_w: np.ndarray
    e_door_h: np.ndarray
    e_sign0: np.ndarray
    e_sign1: np.ndarray
    e_shop_off: np.ndarray
    e_normal_az: np.ndarray  # degrees


def _facade_params(scene: Scene) -> _Facades:
    nb = len(scene.buildings)
    seeds = np.array([int(b.seed) & (2**63 - 1) for b in scene.buildings], dtype=np.int64)

    def u(j: int) -> np.ndarray:
        return unit(seeds, _TAG_FACADE, j) if nb else np.zeros(0)

    gh = 3.4 + 1.2 * u(1)
    fh = 2.9 + 0.9 * u(2)
    wh = fh * (0.42 + 0.22 * u(3))
    sill = (fh - wh) * (0.35 + 0.3 * u(4))
    ww = 0.8 + 1.4 * u(5)
    sx = ww + 0.6 + 2.0 * u(6)
    tints = np.array([(40, 52, 66), (58, 86, 110), (66, 92, 80), (96, 82, 62), (30, 32, 38), (86, 96, 108)], float)
    glass = tints[np.minimum((u(7) * len(tints)).astype(np.int64), len(tints) - 1)] * (0.85 + 0.3 * u(8))[:, None]
    pattern = np.minimum((u(9) * 5).astype(np.int64), 4)
    shop = u(13) < 0.35
    sign = _hsv_to_rgb(u(14), 0.65 + 0.3 * u(22), 0.75 + 0.2 * u(23))
    sign_z0 = 3.0 + 0.6 * u(15)
    sign_z1 = np.minimum(sign_z0 + 0.8 + 0.6 * u(16), 5.0)
    gh = np.where(shop, np.maximum(gh, sign_z1 + 0.35), gh)
    door = _hsv_to_rgb(0.05 + 0.1 * u(17), 0.3 + 0.4 * u(18), 0.15 + 0.3 * u(24))
    flat = np.array([b.colour is not None for b in scene.buildings], dtype=bool)
    flat_rgb = np.array([b.colour if b.colour is not None else (0, 0, 0) for b in scene.buildings], float)
    flat_rgb = flat_rgb.reshape(nb, 3)

    seg_b = scene.seg_building
    L = scene.seg_len
    e = scene.seg_edge
    s_seed = seeds[seg_b] if len(seg_b) else np.zeros(0, dtype=np.int64)

    def ue(j: int) -> np.ndarray:
        return unit(s_seed, _TAG_EDGE, e, j) if len(seg_b) else np.zeros(0)

    bsx, bww = sx[seg_b], ww[seg_b]
    nwin = np.maximum(np.floor((L - 1.2 + (bsx - bww)) / bsx), 0.0)
    off = (L - nwin * bsx) / 2
    has_door = (L >= 4.0) & (ue(0) < 0.85)
    kd = np.minimum(np.floor(ue(1) * nwin), np.maximum(nwin - 1, 0))
    door_c = np.where(nwin >= 1, off + (kd + 0.5) * bsx, L / 2)
    door_c = np.where(has_door, door_c, np.nan)
    door_w = np.minimum(np.maximum(bww, 1.1) + 0.2, np.maximum(L - 1.0, 0.5))
    door_h = 2.3 + 0.5 * ue(2)
    sign0 = 0.4 + 0.3 * L * ue(3)
    sign1 = L - 0.4 - 0.3 * L * ue(4)
    shop_sp = 3.0 + 2.5 * u(20)
    shop_off = (L % shop_sp[seg_b]) / 2 if len(seg_b) else np.zeros(0)
    normal_az = np.degrees(np.arctan2(scene.seg_nx, scene.seg_ny))
    no_windows = flat[seg_b] if len(seg_b) else np.zeros(0, dtype=bool)
    nwin = np.where(no_windows, 0.0, nwin)
    door_c = np.where(no_windows, np.nan, door_c)
    return _Facades(
        b_gh=gh,
        b_fh=fh,
        b_sill=sill,
        b_wh=wh,
        b_ww=ww,
        b_sx=sx,
        b_glass=glass,
        b_door=door,
        b_sign=sign,
        b_sign_z=np.stack([sign_z0, sign_z1], axis=-1) if nb else np.zeros((0, 2)),
        b_shop=shop & ~flat,
        b_shop_sp=shop_sp,
        b_pattern=np.where(flat, 5, pattern),
        b_p1=u(10),
        b_p2=u(11),
        b_amp=0.05 + 0.08 * u(12),
        b_cornice=0.3 + 0.5 * u(21),
        b_lit=0.2 + 0.45 * u(19),
        b_hash=(mix(seeds, _TAG_FACADE, 99) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        if nb
        else np.zeros(0, np.uint32),
        b_flat=flat,
        b_flat_rgb=flat_rgb,
        e_nwin=nwin,
        e_off=off,
        e_door_c=door_c,
        e_door_w=door_w,
        e_door_h=door_h,
        e_sign0=sign0,
        e_sign1=sign1,
        e_shop_off=shop_off,
        e_normal_az=normal_az,
    )


def _paint(seeds: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wall and trim colours (RGB 0-255) of a paint job ``key`` (0 = the original) per building."""
    hue = unit(seeds, _TAG_PAINT, key, 0)
    r = unit(seeds, _TAG_PAINT, key, 1)
    sat = np.where(r < 0.2, 0.02 + 0.06 * r, 0.12 + 0.5 * unit(seeds, _TAG_PAINT, key, 2) ** 1.3)
    val = 0.36 + 0.56 * unit(seeds, _TAG_PAINT, key, 3)
    wall = _hsv_to_rgb(hue, sat, val)
    tval = np.where(val > 0.62, val * 0.55, np.minimum(val + 0.32, 0.95))
    trim_hue = hue + 0.08 * (unit(seeds, _TAG_PAINT, key, 4) - 0.5)
    trim = _hsv_to_rgb(trim_hue, sat * 0.6, tval)
    return wall, trim


@dataclass
class _Year:
    wall: np.ndarray  # (nb, 3)
    trim: np.ndarray  # (nb, 3)
    sun_az: float
    sun_el: float
    sun: float  # direct light strength 0..1
    gain: np.ndarray  # (3,) exposure and white balance
    zenith: np.ndarray
    horizon: np.ndarray
    cloud_k: np.ndarray  # (4, 2) wave vectors on the cloud plane
    cloud_phase: np.ndarray  # (4,)
    cloud_cover: float
    asphalt: float


def _year_state(scene: Scene, year: int) -> _Year:
    year = int(year)
    seeds = np.array([int(b.seed) & (2**63 - 1) for b in scene.buildings], dtype=np.int64)
    nb = len(seeds)
    key = np.zeros(nb, dtype=np.int64)
    if nb:
        lo, hi = _REPAINT_YEARS
        for y in range(lo, min(max(year, lo), hi) + 1):
            key = np.where(unit(seeds, _TAG_REPAINT, y) < _REPAINT_P, y, key)
        wall, trim = _paint(seeds, key)
    else:
        wall = trim = np.zeros((0, 3))
    r = unit(int(scene.seed), _TAG_YEAR, year, np.arange(24))
    haze = float(r[0]) ** 2  # mostly clear, sometimes hazy
    sun = 1.0 - 0.45 * haze
    gain = (0.95 + 0.1 * r[2]) * np.array([1.0 + 0.04 * (r[3] - 0.5), 1.0, 1.0 - 0.04 * (r[3] - 0.5)])
    blue = np.array([60.0 + 25 * r[4], 115.0 + 30 * r[4], 200.0 + 30 * r[5]])
    grey = np.array([160.0, 166.0, 176.0])
    zenith = blue + (grey - blue) * 0.65 * haze
    horizon = np.array([196.0 + 20 * r[5], 212.0 + 16 * r[5], 230.0 + 16 * r[6]])
    horizon = horizon + (np.array([205.0, 207.0, 210.0]) - horizon) * haze
    ang = 2 * np.pi * r[8:12]
    mag = 0.6 + 2.2 * r[12:16]
    return _Year(
        wall=wall,
        trim=trim,
        sun_az=130.0 + 100.0 * float(r[7]),
        sun_el=30.0 + 30.0 * float(r[16]),
        sun=float(sun),
        gain=gain.astype(np.float32),
        zenith=zenith,
        horizon=np.minimum(horizon, 250.0),
        cloud_k=np.stack([mag * np.cos(ang), mag * np.sin(ang)], axis=-1),
        cloud_phase=2 * np.pi * r[17:21],
        cloud_cover=float(0.1 + 0.45 * r[21] + 0.2 * haze),
        asphalt=float(0.94 + 0.12 * r[22]),
    )


# ---------------------------------------------------------------- occluders as primitives


@dataclass
class _Prims:
    """Occluders as primitives: boxes (``shape`` 0) and vertical cylinders / crowns (1 / 2)."""

    shape: np.ndarray  # 0 box, 1 cylinder, 2 ellipsoidal crown
    kind: np.ndarray  # 0 vehicle body, 1 car cabin, 2 trunk, 3 crown, 4 pole
    cx: np.ndarray
    cy: np.ndarray
    ux: np.ndarray  # box long axis
    uy: np.ndarray
    hl: np.ndarray  # half length (boxes) / radius (cylinders)
    hw: np.ndarray  # half width (boxes)
    zb: np.ndarray
    zt: np.ndarray
    rgb: np.ndarray  # (P, 3) side colour
    top: np.ndarray  # (P, 3) top-face colour


def _occluder_prims(scene: Scene, year: int) -> _Prims:
    rows: list[tuple] = []
    for o in occluders(scene, year):
        col = np.array(o.colour, dtype=np.float64)
        h = math.radians(o.heading)
        ux, uy = math.sin(h), math.cos(h)
        if o.kind in ("car", "van", "truck"):
            if o.kind == "car":
                body_top = 0.95 + 0.1 * (o.height - 1.5)
                rows.append((0, 0, o.x, o.y, ux, uy, o.length / 2, o.width / 2, 0.0, body_top, col, col * 1.1))
                glass = np.array([34.0, 40.0, 50.0])
                rows.append(
                    (0, 1, o.x, o.y, ux, uy, o.length * 0.28, o.width * 0.45, body_top, o.height, glass, col * 1.05)
                )
            else:
                rows.append((0, 0, o.x, o.y, ux, uy, o.length / 2, o.width / 2, 0.0, o.height, col, col * 1.1))
        elif o.kind == "tree":
            bark = np.array([82.0, 62.0, 44.0])
            rows.append((1, 2, o.x, o.y, 0.0, 1.0, o.length / 2, 0.0, 0.0, o.base + 0.6, bark, bark))
            rows.append((2, 3, o.x, o.y, 0.0, 1.0, o.width / 2, 0.0, o.base, o.height, col, col))
        else:
            rows.append((1, 4, o.x, o.y, 0.0, 1.0, o.width / 2, 0.0, 0.0, o.height, col, col))
    n = len(rows)
    if n == 0:
        z = np.zeros(0)
        return _Prims(
            z.astype(np.int64), z.astype(np.int64), z, z, z, z, z, z, z, z, np.zeros((0, 3)), np.zeros((0, 3))
        )
    cols = list(zip(*rows, strict=True))
    return _Prims(
        shape=np.array(cols[0], dtype=np.int64),
        kind=np.array(cols[1], dtype=np.int64),
        cx=np.array(cols[2], dtype=np.float64),
        cy=np.array(cols[3], dtype=np.float64),
        ux=np.array(cols[4], dtype=np.float64),
        uy=np.array(cols[5], dtype=np.float64),
        hl=np.array(cols[6], dtype=np.float64),
        hw=np.array(cols[7], dtype=np.float64),
        zb=np.array(cols[8], dtype=np.float64),
        zt=np.array(cols[9], dtype=np.float64),
        rgb=np.array(cols[10], dtype=np.float64),
        top=np.clip(np.array(cols[11], dtype=np.float64), 0, 255),
    )


# ---------------------------------------------------------------- ray casting


def _nearest_k(t: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` smallest values of each row of ``t``, sorted ascending."""
    n = t.shape[1]
    if n > k:
        part = np.argpartition(t, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), (t.shape[0], n))
    order = np.argsort(np.take_along_axis(t, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def facade_hits(
    scene: Scene,
    x: float,
    y: float,
    dx: np.ndarray,
    dy: np.ndarray,
    k: int = FACADE_LAYERS,
    radius: float = FACADE_RADIUS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest facade hits of horizontal rays from ``(x, y)`` along ``(dx, dy)``.

    Returns ``(t, seg, s)``, each ``(k, n_rays)``: distance (metres, ``inf`` for no hit), segment
    index into the scene's ``seg_*`` arrays (-1 for none) and metres from the segment's start.
    Only segments facing the camera and within ``radius`` count (footprints are convex, so each
    building gives at most one hit per ray).
    """
    n = len(dx)
    t_out = np.full((k, n), np.inf)
    seg_out = np.full((k, n), -1, dtype=np.int64)
    s_out = np.zeros((k, n))
    x0, y0 = scene.seg_x0, scene.seg_y0
    ex, ey = scene.seg_x1 - x0, scene.seg_y1 - y0
    qx, qy = x0 - x, y0 - y
    front = ex * qy - ey * qx > 1e-9  # the camera is on the outward (right-hand) side
    l2 = np.maximum(ex * ex + ey * ey, 1e-12)
    along = np.clip(-(qx * ex + qy * ey) / l2, 0.0, 1.0)
    near = np.hypot(qx + along * ex, qy + along * ey) < radius
    sel = np.flatnonzero(front & near)
    if len(sel) == 0:
        return t_out, seg_out, s_out
    qx, qy, ex, ey = qx[sel], qy[sel], ex[sel], ey[sel]
    length = np.sqrt(ex * ex + ey * ey)
    cross_qe = qx * ey - qy * ex
    chunk = max(1, 2_000_000 // len(sel))
    with np.errstate(divide="ignore", invalid="ignore"):
        for c0 in range(0, n, chunk):
            cdx, cdy = dx[c0 : c0 + chunk, None], dy[c0 : c0 + chunk, None]
            den = cdx * ey - cdy * ex  # cross(d, e)
            t = cross_qe / den
            s = (qx * cdy - qy * cdx) / den  # cross(q, d) / cross(d, e)
            ok = (t > 1e-6) & (s >= -1e-7) & (s <= 1.0 + 1e-7)
            t = np.where(ok, t, np.inf)
            idx = _nearest_k(t, min(k, len(sel)))
            kk = idx.shape[1]
            tk = np.take_along_axis(t, idx, axis=1)
            sk = np.take_along_axis(s, idx, axis=1)
            hit = np.isfinite(tk)
            t_out[:kk, c0 : c0 + chunk] = tk.T
            seg_out[:kk, c0 : c0 + chunk] = np.where(hit, sel[idx], -1).T
            s_out[:kk, c0 : c0 + chunk] = np.where(hit, np.clip(sk, 0.0, 1.0) * length[idx], 0.0).T
    return t_out, seg_out, s_out


def _column_rays(heading: float, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    az = float(heading) + (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) * (360.0 / width)
    rad = np.radians(az)
    return az % 360.0, np.sin(rad), np.cos(rad)


def visible_facade_columns(scene: Scene, x: float, y: float, heading: float, width: int) -> dict[str, np.ndarray]:
    """The nearest facade of each panorama column (as :func:`render_panorama` casts them).

    Returns arrays of length ``width``: ``building`` (index into ``scene.buildings``, -1 where the
    ray meets no facade within :data:`FACADE_RADIUS`), ``distance`` (metres, ``inf`` for none),
    ``segment`` (-1 for none), ``along`` (metres from the segment's start) and ``azimuth``
    (degrees, the column centre's).
    """
    az, dx, dy = _column_rays(heading, int(width))
    t, seg, s = facade_hits(scene, float(x), float(y), dx, dy, k=1)
    b = np.where(seg[0] >= 0, scene.seg_building[np.maximum(seg[0], 0)] if len(scene.seg_building) else -1, -1)
    return {"building": b, "distance": t[0], "segment": seg[0], "along": s[0], "azimuth": az}


def _occluder_hits(prims: _Prims, x: float, y: float, dx: np.ndarray, dy: np.ndarray, k: int) -> dict:
    """The ``k`` nearest occluder primitives per column: entry/exit distance, z range, id."""
    n = len(dx)
    out = {
        "tin": np.full((k, n), np.inf),
        "tout": np.full((k, n), np.inf),
        "zb": np.zeros((k, n)),
        "zt": np.zeros((k, n)),
        "pid": np.full((k, n), -1, dtype=np.int64),
        "perp": np.zeros((k, n)),
    }
    if len(prims.cx) == 0:
        return out
    qx, qy = prims.cx - x, prims.cy - y
    sel = np.flatnonzero(np.hypot(qx, qy) < OCCLUDER_RADIUS + prims.hl)
    if len(sel) == 0:
        return out
    qx, qy = qx[sel], qy[sel]
    shape, hl, hw = prims.shape[sel], prims.hl[sel], prims.hw[sel]
    ux, uy = prims.ux[sel], prims.uy[sel]
    cdx, cdy = dx[:, None], dy[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Vertical cylinders: the chord of the circle.
        tc = cdx * qx + cdy * qy
        perp = cdx * qy - cdy * qx
        h2 = hl * hl - perp * perp
        sq = np.sqrt(np.maximum(h2, 0.0))
        c_in, c_out = tc - sq, tc + sq
        c_ok = h2 > 0
        # Oriented boxes: slabs in the box frame (long axis u, side axis v = (uy, -ux)).
        ox, oy = -(qx * ux + qy * uy), -(qx * uy - qy * ux)
        du, dv = cdx * ux + cdy * uy, cdx * uy - cdy * ux
        a1, a2 = (-hl - ox) / du, (hl - ox) / du
        b1, b2 = (-hw - oy) / dv, (hw - oy) / dv
        b_in = np.maximum(np.minimum(a1, a2), np.minimum(b1, b2))
        b_out = np.minimum(np.maximum(a1, a2), np.maximum(b1, b2))
        b_ok = b_in < b_out
        is_box = shape == 0
        t_in = np.where(is_box, b_in, c_in)
        t_out = np.where(is_box, b_out, c_out)
        ok = np.where(is_box, b_ok, c_ok) & (t_in > 0.05) & np.isfinite(t_in)
        t_key = np.where(ok, t_in, np.inf)
    kk = min(k, len(sel))
    idx = _nearest_k(t_key, kk)
    tin = np.take_along_axis(t_key, idx, axis=1)
    hit = np.isfinite(tin)
    pid = np.where(hit, sel[idx], -1)
    pk = np.take_along_axis(perp, idx, axis=1)
    zb = prims.zb[np.maximum(pid, 0)]
    zt = prims.zt[np.maximum(pid, 0)]
    crown = hit & (prims.shape[np.maximum(pid, 0)] == 2)
    if crown.any():
        r = prims.hl[np.maximum(pid, 0)]
        frac = np.sqrt(np.clip(1.0 - (pk / np.maximum(r, 1e-6)) ** 2, 0.0, 1.0))
        zc, hz = (zb + zt) / 2, (zt - zb) / 2
        zb = np.where(crown, zc - hz * frac, zb)
        zt = np.where(crown, zc + hz * frac, zt)
    out["tin"][:kk] = tin.T
    out["tout"][:kk] = np.where(hit, np.take_along_axis(t_out, idx, axis=1), np.inf).T
    out["zb"][:kk] = zb.T
    out["zt"][:kk] = zt.T
    out["pid"][:kk] = pid.T
    out["perp"][:kk] = pk.T
    return out


# ---------------------------------------------------------------- shading


def _fog(dist: np.ndarray) -> np.ndarray:
    return (1.0 - np.exp(-np.asarray(dist, dtype=np.float32) / np.float32(650.0))).astype(np.float32)


def _facade_colours(
    scene: Scene,
    fac: _Facades,
    yr: _Year,
    t_k: np.ndarray,
    seg_k: np.ndarray,
    s_k: np.ndarray,
    cl: np.ndarray,
    z: np.ndarray,
    width: int,
    night: bool,
    haze: np.ndarray,
) -> np.ndarray:
    """RGB (n, 3) float32 of facade pixels: ``cl`` indexes the flattened (layer, column) hits."""
    seg = np.maximum(seg_k.ravel(), 0)
    valid = seg_k.ravel() >= 0
    b = scene.seg_building[seg]
    s = s_k.ravel()
    t = t_k.ravel()
    f32 = np.float32

    # ---- per (layer, column): horizontal structure, palette, shading
    sx, ww = fac.b_sx[b], fac.b_ww[b]
    rel = s - fac.e_off[seg]
    kcol = np.floor(rel / sx)
    within = np.abs(rel - (kcol + 0.5) * sx)
    inwin = (kcol >= 0) & (kcol < fac.e_nwin[seg]) & (within < ww / 2)
    frame = inwin & (within > ww / 2 - 0.09)
    mull = inwin & (ww > 1.5) & (within < 0.05)
    door = np.abs(s - fac.e_door_c[seg]) < fac.e_door_w[seg] / 2  # NaN centre: False
    shop = fac.b_shop[b]
    sign = shop & (s >= fac.e_sign0[seg]) & (s <= fac.e_sign1[seg])
    sp = fac.b_shop_sp[b]
    rel2 = (s - fac.e_shop_off[seg]) % sp
    shopwin = shop & (np.abs(rel2 - sp / 2) < sp / 2 - 0.3) & (s > 0.5) & (s < scene.seg_len[seg] - 0.5) & ~door
    letter = sign & ((s * 2.2) % 1.0 < 0.55)
    flags = (
        inwin * _F_WIN
        + frame * _F_FRAME
        + mull * _F_MULL
        + door * _F_DOOR
        + sign * _F_SIGN
        + shop * _F_SHOP
        + shopwin * _F_SHOPWIN
        + letter * _F_LETTER
        + fac.b_flat[b] * _F_FLAT
    ).astype(np.int32)
    flags = np.where(valid, flags, 0)

    flat = fac.b_flat[b][:, None]
    if night:
        shade = np.full(len(seg), 0.11)
    else:
        cosang = np.cos(np.radians(fac.e_normal_az[seg] - yr.sun_az)) * math.cos(math.radians(yr.sun_el))
        shade = 0.74 + 0.3 * yr.sun * np.maximum(cosang, 0.0) + 0.05 * (1.0 - yr.sun)
    shade = shade[:, None]
    gain = yr.gain.astype(np.float64)
    wall = yr.wall[b] * shade * gain
    trim = yr.trim[b] * shade * gain
    sky_mix = (yr.horizon * 0.55 + yr.zenith * 0.45) * (0.15 if night else 1.0)
    glass = (fac.b_glass[b] * (0.5 if night else 0.55) + sky_mix * (0.12 if night else 0.45)) * gain
    doorc = fac.b_door[b] * shade * gain
    signc = fac.b_sign[b] * (1.1 if night else (0.85 + 0.15 * shade)) * gain
    letterc = np.array([255.0, 250.0, 235.0] if night else [245.0, 245.0, 238.0]) * gain * np.ones_like(glass)
    shopc = glass * 0.8 if not night else np.array([250.0, 205.0, 140.0]) * 0.85 * np.ones_like(glass)
    litc = np.array([255.0, 208.0, 130.0]) * np.ones_like(glass)
    palette = np.stack([wall, trim, glass, trim * 0.8, doorc, signc, letterc, litc, shopc], axis=1)
    palette = np.where(flat[:, :, None], fac.b_flat_rgb[b][:, None, :], palette).astype(f32)
    cover = np.clip((ww * fac.b_wh[b]) / (sx * fac.b_fh[b]), 0.0, 0.8)[:, None]
    lit_mean = fac.b_lit[b][:, None]
    glass_mean = np.where(night, glass * (1 - lit_mean) + litc * lit_mean * 0.8, glass)
    mean = np.where(flat, fac.b_flat_rgb[b], wall * (1 - cover) + glass_mean * cover).astype(f32)
    pix_m = t * (2 * math.pi / width)
    detail = np.where(fac.b_flat[b], 1.0, np.clip(1.6 - pix_m / 0.45, 0.0, 1.0)).astype(f32)
    fog = np.where(fac.b_flat[b], 0.0, _fog(t)).astype(f32)

    # ---- per pixel: vertical structure
    fl_ = flags[cl]
    bb = b[cl]
    zf = z.astype(f32)
    gh = fac.b_gh[b].astype(f32)[cl]
    fh = fac.b_fh[b].astype(f32)[cl]
    sill = fac.b_sill[b].astype(f32)[cl]
    wh = fac.b_wh[b].astype(f32)[cl]
    hb = scene.heights[b].astype(f32)[cl]
    zz = zf - gh
    storey = np.floor(zz / fh)
    fz = zz - storey * fh
    upper_win = (zz >= 0) & (fz >= sill) & (fz < sill + wh) & (zf < hb - 1.0)
    ground = zf < gh
    is_shop = (fl_ & _F_SHOP) != 0
    ground_win = ground & ~is_shop & (zf >= 1.0) & (zf < gh - 0.9)
    win = ((fl_ & _F_WIN) != 0) & (upper_win | ground_win)
    sign_z = fac.b_sign_z[b].astype(f32)[cl]
    sign = ((fl_ & _F_SIGN) != 0) & (zf >= sign_z[:, 0]) & (zf < sign_z[:, 1])
    shopwin = ((fl_ & _F_SHOPWIN) != 0) & (zf >= 0.45) & (zf < sign_z[:, 0] - 0.35)
    door = ((fl_ & _F_DOOR) != 0) & (zf < fac.e_door_h[seg].astype(f32)[cl])
    cornice = fac.b_cornice[b].astype(f32)[cl]
    trim = (zf > hb - cornice) | (zf < 0.35) | ((zz >= -0.25) & (zz < 0) & ~is_shop)

    cat = np.full(len(zf), _WALL, dtype=np.int64)
    cat[trim] = _TRIM
    cat[win] = _GLASS
    frame = win & (
        ((fl_ & (_F_FRAME | _F_MULL)) != 0)
        | (upper_win & ((fz < sill + 0.08) | (fz > sill + wh - 0.08)))
        | (ground_win & ((zf < 1.08) | (zf > gh - 0.98)))
    )
    cat[frame] = _FRAME
    cat[shopwin] = _SHOP
    cat[sign] = _SIGN
    cat[sign & ((fl_ & _F_LETTER) != 0) & (np.abs(zf - sign_z.mean(axis=1)) < (sign_z[:, 1] - sign_z[:, 0]) * 0.22)] = (
        _LETTER
    )
    cat[door] = _DOOR
    flat_px = (fl_ & _F_FLAT) != 0
    cat[flat_px] = _WALL

    factor = np.ones(len(zf), dtype=f32)
    sv = s.astype(f32)[cl]
    if night:
        wid = kcol.astype(np.int64)[cl]
        sto = storey.astype(np.int64)
        lit = win & ~frame & (_u32(fac.b_hash[bb], seg[cl], wid, sto) < fac.b_lit[b].astype(f32)[cl])
        lit |= shopwin & (_u32(fac.b_hash[bb], 11) < 0.7)
        cat[lit] = _LIT
        factor[lit] = 0.55 + 0.45 * _u32(fac.b_hash[bb][lit], wid[lit], sto[lit])
    # glass: brighter towards the top (sky reflection)
    g = cat == _GLASS
    if g.any():
        rel_z = np.where(ground_win[g], (zf[g] - 1.0) / np.maximum(gh[g] - 1.9, 0.5), (fz[g] - sill[g]) / wh[g])
        factor[g] = 0.78 + 0.5 * np.clip(rel_z, 0.0, 1.0)
    # wall patterns
    wallm = (cat == _WALL) & ~flat_px
    if wallm.any():
        pat = fac.b_pattern[bb]
        p1 = fac.b_p1[b].astype(f32)[cl]
        p2 = fac.b_p2[b].astype(f32)[cl]
        amp = fac.b_amp[b].astype(f32)[cl]
        for ptype in range(5):
            m = wallm & (pat == ptype)
            if not m.any():
                continue
            zs, ss, a, q1, q2 = zf[m], sv[m], amp[m], p1[m], p2[m]
            h = fac.b_hash[bb[m]]
            if ptype == 0:  # plaster: blotchy noise
                n = _u32(h, np.floor(ss / 0.7).astype(np.int64), np.floor(zs / 0.7).astype(np.int64))
                factor[m] = 1.0 + a * 0.6 * (n - 0.5)
            elif ptype == 1:  # bricks
                bh = 0.22 + 0.12 * q1
                bw = bh * (2.2 + q2)
                row = np.floor(zs / bh)
                ss2 = ss + (row % 2) * bw * 0.5
                col = np.floor(ss2 / bw)
                mortar = ((zs / bh - row) < 0.14) | ((ss2 / bw - col) < 0.06)
                n = _u32(h, row.astype(np.int64), col.astype(np.int64))
                factor[m] = np.where(mortar, 1.0 + 1.6 * a, 1.0 + 1.4 * a * (n - 0.5))
            elif ptype == 2:  # horizontal siding
                period = 0.18 + 0.35 * q1
                factor[m] = np.where((zs / period) % 1.0 < 0.2, 1.0 - 1.5 * a, 1.0 + 0.3 * a)
            elif ptype == 3:  # pilasters
                period = 1.2 + 2.0 * q1
                factor[m] = np.where((ss / period) % 1.0 < 0.28, 1.0 + 1.3 * a, 1.0 - 0.3 * a)
            else:  # panels
                pw, ph = 1.5 + 2.0 * q1, 1.0 + 1.5 * q2
                ci, ri = np.floor(ss / pw), np.floor(zs / ph)
                joint = ((ss / pw - ci) < 0.025) | ((zs / ph - ri) < 0.03)
                n = _u32(h, ci.astype(np.int64), ri.astype(np.int64))
                factor[m] = np.where(joint, 1.0 - 1.8 * a, 1.0 + 0.8 * a * (n - 0.5))

    col = palette.reshape(-1, _NCAT, 3)[cl, cat] * factor[:, None]
    det = detail[cl][:, None]
    col = col * det + mean[cl] * (1.0 - det)
    if night:  # warm light from the street lamps on the lowest storeys
        glow = np.clip(1.0 - zf / 7.0, 0.0, 1.0)[:, None] * np.array([38.0, 28.0, 14.0], dtype=f32)
        col = col + np.where(flat_px[:, None], 0.0, glow)
    fg = fog[cl][:, None]
    return col * (1.0 - fg) + haze[None, :] * fg


def _ground_colours(
    scene: Scene,
    yr: _Year,
    cam_xy: tuple[float, float],
    gx: np.ndarray,
    gy: np.ndarray,
    dist: np.ndarray,
    night: bool,
    haze: np.ndarray,
) -> np.ndarray:
    """RGB (n, 3) float32 of ground points (metres); the camera stands at ``cam_xy``."""
    f32 = np.float32
    n = len(gx)
    half_city = scene.size_m / 2
    best = np.full(n, np.inf, dtype=f32)
    bi = np.full(n, -1, dtype=np.int64)
    near = dist < _GROUND_DETAIL
    if scene.streets and n:
        reach = min(float(np.max(dist)), _GROUND_DETAIL)
        cx, cy = cam_xy
        m = np.empty(n, dtype=f32)
        tmp = np.empty(n, dtype=f32)
        for i, st in enumerate(scene.streets):
            (x0, y0), (x1, y1) = st.p0, st.p1
            length = math.dist(st.p0, st.p1)
            ux, uy = (x1 - x0) / length, (y1 - y0) / length
            a0 = min(max((cx - x0) * ux + (cy - y0) * uy, 0.0), length)
            if math.hypot(cx - (x0 + a0 * ux), cy - (y0 + a0 * uy)) > reach + st.width:
                continue
            # m = |perpendicular offset| + distance beyond the ends - half width
            rx, ry = gx - f32(x0), gy - f32(y0)
            np.multiply(rx, f32(uy), out=m)
            m -= ry * f32(ux)
            np.abs(m, out=m)
            np.multiply(rx, f32(ux), out=tmp)
            tmp += ry * f32(uy)
            m += np.maximum(-tmp, 0.0) + np.maximum(tmp - f32(length), 0.0)
            m -= f32(st.width / 2)
            better = m < best
            np.copyto(best, m, where=better)
            bi[better] = i
    best[~near] = np.inf
    bi[~near] = -1
    # along / right-of-travel offset for the nearest street
    p0 = np.array([s.p0 for s in scene.streets] + [(0.0, 0.0)], dtype=np.float64)
    uu = np.array([s.direction for s in scene.streets] + [(0.0, 1.0)], dtype=np.float64)
    rx = gx - p0[bi, 0].astype(f32)
    ry = gy - p0[bi, 1].astype(f32)
    ux, uy = uu[bi, 0].astype(f32), uu[bi, 1].astype(f32)
    along = rx * ux + ry * uy
    perp = rx * uy - ry * ux
    sidewalk = np.array([s.sidewalk for s in scene.streets] + [0.0], dtype=f32)[bi]
    half = np.array([s.width / 2 for s in scene.streets] + [0.0], dtype=f32)[bi]
    road = best < 0
    kerb = (best >= 0) & (best < 0.22)
    walk = (best >= 0.22) & (best < sidewalk)
    outside = (np.abs(gx) > half_city) | (np.abs(gy) > half_city)

    col = np.empty((n, 3), dtype=f32)
    col[:] = np.array([122.0, 122.0, 114.0], dtype=f32)  # lots, courtyards
    col[outside] = np.array([92.0, 112.0, 66.0], dtype=f32)
    noise = _noise2(np.floor(gx * f32(5.0)), np.floor(gy * f32(5.0)), 17)
    a = f32(yr.asphalt)
    tints = np.array([float(unit(i, 5)) for i in range(len(scene.streets))] + [0.5], dtype=f32)
    asphalt = (72.0 + 16.0 * tints[bi[road]]) * a * (0.97 + 0.06 * noise[road])
    col[road] = asphalt[:, None] * np.array([1.0, 1.01, 1.05], dtype=f32)
    col[kerb] = np.array([176.0, 175.0, 170.0], dtype=f32)
    wa, wb = along[walk] * f32(1 / 1.6), (best[walk] - f32(0.22)) * f32(1 / 1.6)
    slab = (wa - np.floor(wa) < 0.035) | (wb - np.floor(wb) < 0.035)
    wcol = np.where(slab, f32(0.82), f32(1.0)) * (0.97 + 0.06 * noise[walk])
    col[walk] = wcol[:, None] * np.array([156.0, 153.0, 146.0], dtype=f32)
    line = np.flatnonzero(road & (np.abs(perp) < 0.09))
    ph = (along[line] + f32(1.0)) * f32(1 / 8.0)
    col[line[ph - np.floor(ph) < 0.4]] = np.array([222.0, 220.0, 205.0], dtype=f32)
    if night:
        col *= f32(0.11)
        # light pools of the street lamps (poles every 30 m from 10 m, alternating sides)
        slot = np.round((along - 10.0) / 30.0)
        side = np.where(slot % 2 == 0, 1.0, -1.0).astype(f32)
        da = along - (10.0 + 30.0 * slot)
        dl = perp - side * (half + 0.35)
        paved = road | kerb | walk
        pool = np.exp(-(da * da + dl * dl) / f32(2 * 5.0**2)) * paved
        col += pool[:, None] * np.array([95.0, 72.0, 40.0], dtype=f32)
    else:
        col *= yr.gain[None, :]
    fg = _fog(dist)[:, None]
    return col * (1.0 - fg) + haze[None, :] * fg


def _sky_colours(yr: _Year, el: np.ndarray, az: np.ndarray, night: bool) -> np.ndarray:
    """RGB (n, 3) float32 of sky directions (elevation, azimuth in radians)."""
    f32 = np.float32
    sin_el = np.sin(el).astype(f32)
    if night:
        grad = (np.clip(sin_el, 0.0, 1.0) ** f32(0.5))[:, None]
        col = np.array([34.0, 34.0, 50.0], f32) * (1 - grad) + np.array([5.0, 7.0, 18.0], f32) * grad
        star = _u32(np.round(np.degrees(az) * 5.0).astype(np.int64), np.round(np.degrees(el) * 5.0).astype(np.int64), 3)
        star = (star < 0.004) & (el > np.radians(8.0))
        col[star] = np.array([230.0, 230.0, 240.0], dtype=f32)
        return col
    grad = (np.clip(sin_el, 0.0, 1.0) ** f32(0.6))[:, None]
    col = yr.horizon.astype(f32) * (1 - grad) + yr.zenith.astype(f32) * grad
    sel, saz = math.radians(yr.sun_el), math.radians(yr.sun_az)
    cosang = sin_el * f32(math.sin(sel)) + np.cos(el).astype(f32) * f32(math.cos(sel)) * np.cos(az - saz).astype(f32)
    glow = np.exp((cosang - 1.0) * f32(18.0)) * f32(0.55 * yr.sun) + np.exp((cosang - 1.0) * f32(900.0)) * f32(yr.sun)
    col = col + glow[:, None] * np.array([255.0, 236.0, 200.0], f32)
    # clouds on a plane: wave sum over (cot(el) sin az, cot(el) cos az)
    cot = (1.0 / np.tan(np.maximum(el, np.radians(1.5)))).astype(f32)
    px, py = cot * np.sin(az).astype(f32), cot * np.cos(az).astype(f32)
    wave = np.zeros(len(el), dtype=f32)
    for (kx, ky), ph in zip(yr.cloud_k, yr.cloud_phase, strict=True):
        wave += np.sin(px * f32(kx) + py * f32(ky) + f32(ph))
    thr = f32(2.0 - 3.2 * yr.cloud_cover)
    cloud = np.clip((wave - thr) / f32(1.4), 0.0, 1.0) * np.clip(sin_el * 8.0, 0.0, 1.0)
    ccol = np.array([240.0, 240.0, 242.0], f32) * (f32(0.8) + f32(0.2) * np.clip(wave - thr, 0.0, 1.0))[:, None]
    ccol *= f32(0.75 + 0.25 * yr.sun)
    col = col * (1 - cloud[:, None]) + ccol * cloud[:, None]
    return col * yr.gain[None, :]


def _occluder_pass(
    img: np.ndarray,
    depth: np.ndarray,
    prims: _Prims,
    occ: dict,
    tanel: np.ndarray,
    cam: float,
    night: bool,
    yr: _Year,
    haze: np.ndarray,
) -> None:
    """Draw the occluders over ``img`` (H, W, 3 float32) where they are nearer than ``depth``."""
    f32 = np.float32
    valid = occ["pid"] >= 0
    if not valid.any():
        return
    height, width = depth.shape
    # rows any primitive can reach
    with np.errstate(divide="ignore", invalid="ignore"):
        tin = np.where(valid, occ["tin"], np.inf)
        tout = np.where(valid, occ["tout"], np.inf)
        top = np.where(valid, (occ["zt"] - cam) / np.where((occ["zt"] - cam) > 0, tin, tout), -np.inf)
        bot = np.where(valid, (occ["zb"] - cam) / np.where((occ["zb"] - cam) > 0, tout, tin), np.inf)
    hi, lo = float(np.max(top)), float(np.min(bot))
    rows = np.flatnonzero((tanel <= hi + 1e-6) & (tanel >= lo - 1e-6))
    if len(rows) == 0:
        return
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    inv = (1.0 / tanel[r0:r1]).astype(f32)[:, None]
    dep = depth[r0:r1]
    done = np.zeros(dep.shape, dtype=bool)
    region = img[r0:r1]
    gain = np.ones(3, f32) if night else yr.gain
    for k in range(occ["pid"].shape[0]):
        if not valid[k].any():
            continue
        pid = np.maximum(occ["pid"][k], 0)
        t_in = tin[k].astype(f32)[None, :]
        t_out = tout[k].astype(f32)[None, :]
        za = ((occ["zb"][k] - cam).astype(f32))[None, :] * inv
        zb = ((occ["zt"][k] - cam).astype(f32))[None, :] * inv
        near = np.maximum(t_in, np.minimum(za, zb))
        far = np.minimum(t_out, np.maximum(za, zb))
        hit = (near <= far) & (near < dep) & ~done & valid[k][None, :]
        if not hit.any():
            continue
        done |= hit
        ri, ci = np.nonzero(hit)
        tt = near[ri, ci]
        zh = cam + tt * tanel[r0 + ri].astype(f32)
        p = pid[ci]
        kind = prims.kind[p]
        topface = tt > t_in[0, ci] + 1e-4
        col = np.where(topface[:, None], prims.top[p], prims.rgb[p]).astype(f32)
        fac = np.ones(len(ri), dtype=f32)
        veh = kind == 0
        fac[veh & (zh < 0.32)] = 0.22  # tyres / shadow under the body
        fac[veh & ~topface & (zh >= 0.32)] *= 0.9 + 0.1 * np.clip((zh[veh & ~topface & (zh >= 0.32)] - 0.3) / 0.6, 0, 1)
        crown = kind == 3
        if crown.any():
            perp = occ["perp"][k][ci[crown]].astype(f32)
            n = _u32(p[crown], np.floor(zh[crown] / 0.3).astype(np.int64), np.floor(perp / 0.3).astype(np.int64))
            fac[crown] = 0.72 + 0.5 * n
        if night:
            fac *= 0.12
            lamp = (kind == 4) & (zh > 5.55)
            col[lamp] = np.array([255.0, 235.0, 180.0], f32)
            fac[lamp] = 1.0
        else:
            lamp = (kind == 4) & (zh > 5.55)
            col[lamp] = np.array([205.0, 205.0, 195.0], f32)
        colour = col * fac[:, None] * gain[None, :]
        fg = _fog(tt)[:, None]
        region[ri, ci] = colour * (1.0 - fg) + haze[None, :] * fg


# ---------------------------------------------------------------- the panorama


def render_panorama(
    scene: Scene,
    x: float,
    y: float,
    heading: float,
    *,
    width: int,
    year: int,
    cam_height: float = 2.5,
    night: bool = False,
    az_span: float | None = None,
) -> np.ndarray:
    """An equirectangular panorama ``(width // 2, width, 3)`` uint8 seen from ``(x, y)``.

    ``heading``: azimuth of the centre column (degrees clockwise from north); ``year`` selects the
    paint, occluders and light; ``cam_height`` in metres; ``night`` for a night scene.
    ``az_span`` (degrees): render only the columns whose centre lies within ``az_span`` of the
    centre column (the others stay black); those columns are exactly what a full render gives
    them (every column is shaded on its own), so a photo cut from inside the span is unchanged.
    """
    width = int(width)
    if width < 8 or width % 2:
        raise ValueError(f"width must be an even number >= 8, got {width}")
    x, y, heading, cam = float(x), float(y), float(heading), float(cam_height)
    if not all(math.isfinite(v) for v in (x, y, heading, cam)) or cam <= 0:
        raise ValueError("x, y, heading must be finite and cam_height > 0")
    height = width // 2
    f32 = np.float32
    fac = _cached("facades", scene.key, lambda: _facade_params(scene))
    yr = _cached("year", (scene.key, int(year)), lambda: _year_state(scene, year))

    az, dx, dy = _column_rays(heading, width)
    full_width, kept = width, None
    if az_span is not None:  # a window of columns: the same per-column computation on fewer columns
        offset = (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) * (360.0 / width)
        kept = np.flatnonzero(np.abs(offset) <= float(az_span))
        az, dx, dy = az[kept], dx[kept], dy[kept]
        width = len(kept)
    az_rad = np.radians(az)
    el = np.radians(90.0 - (np.arange(height, dtype=np.float64) + 0.5) * (180.0 / height))
    tanel = np.tan(el)
    haze = (yr.horizon * (0.16 if night else 1.0) * (1.0 if night else yr.gain)).astype(f32)
    if night:
        haze = np.array([30.0, 30.0, 44.0], f32)

    # 1. facade layers
    t_k, seg_k, s_k = facade_hits(scene, x, y, dx, dy)
    has = seg_k >= 0
    hb = np.where(has, scene.heights[scene.seg_building[np.maximum(seg_k, 0)]] if len(scene.heights) else 0.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(has, (hb - cam) / t_k, -np.inf)
        lower0 = np.where(has[0], -cam / t_k[0], np.inf)
    layer = np.full((height, width), -1, dtype=np.int8)
    tcol = tanel[:, None]
    for k in range(FACADE_LAYERS - 1, -1, -1):
        layer[tcol <= a[k][None, :]] = k
    layer[tcol < lower0[None, :]] = -1

    img = np.empty((height * width, 3), dtype=f32)
    depth = np.full(height * width, np.inf, dtype=f32)
    flat = layer.ravel()

    # 2. facades
    fidx = np.flatnonzero(flat >= 0)
    if len(fidx):
        rows = fidx // width
        cols = fidx - rows * width
        cl = flat[fidx].astype(np.int64) * width + cols
        tpix = t_k.ravel()[cl]
        z = cam + tpix * tanel[rows]
        img[fidx] = _facade_colours(scene, fac, yr, t_k, seg_k, s_k, cl, z, full_width, night, haze)
        depth[fidx] = tpix

    # 3. ground and 4. sky
    below = np.zeros(height, dtype=bool)
    below[tanel < 0] = True
    rest = flat < 0
    gmask = rest.reshape(height, width) & below[:, None]
    gidx = np.flatnonzero(gmask.ravel())
    if len(gidx):
        rows = gidx // width
        cols = gidx - rows * width
        dist = (cam / -tanel[rows]).astype(f32)
        gx = (x + dist * dx[cols]).astype(f32)
        gy = (y + dist * dy[cols]).astype(f32)
        img[gidx] = _ground_colours(scene, yr, (x, y), gx, gy, dist, night, haze)
    sidx = np.flatnonzero((rest.reshape(height, width) & ~below[:, None]).ravel())
    if len(sidx):
        rows = sidx // width
        cols = sidx - rows * width
        img[sidx] = _sky_colours(yr, el[rows], az_rad[cols], night)

    # 5. occluders
    prims = _cached("occ", (scene.key, int(year)), lambda: _occluder_prims(scene, year))
    occ = _occluder_hits(prims, x, y, dx, dy, OCCLUDER_LAYERS)
    img3 = img.reshape(height, width, 3)
    _occluder_pass(img3, depth.reshape(height, width), prims, occ, tanel, cam, night, yr, haze)
    out = np.clip(img3 + 0.5, 0, 255).astype(np.uint8)
    if kept is None:
        return out
    full = np.zeros((height, full_width, 3), dtype=np.uint8)
    full[:, kept] = out
    return full
