"""How the synthetic city looks: per-scene facade parameters, per-year paint and light, occluder primitives.

Part of :mod:`vgdata.synth.render` (which draws panoramas with them): every value here is a
pure function of the scene (its buildings' seeds, its streets) and the year, drawn from
:func:`vgdata.synth.scene.unit` streams keyed by fixed tags, plus the small integer hashes
and lattice noise that the shading uses per pixel. Colours are RGB in [0, 255]; lengths in
metres; angles in degrees clockwise from north.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vgdata.synth.scene import Scene, mix, occluders, unit

_TAG_FACADE = 0xFAC401
_TAG_EDGE = 0xED6E01
_TAG_PAINT = 0xA1E701
_TAG_REPAINT = 0xA1E702
_TAG_YEAR = 0x7EA401
_REPAINT_P = 0.15
_REPAINT_YEARS = (1990, 2040)


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
