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

import numpy as np

from vgdata.synth.appearance import _facade_params, _occluder_prims, _year_state
from vgdata.synth.raycast import (
    FACADE_LAYERS,
    FACADE_RADIUS,
    OCCLUDER_LAYERS,
    OCCLUDER_RADIUS,
    _column_rays,
    _occluder_hits,
    facade_hits,
    visible_facade_columns,
)
from vgdata.synth.scene import Scene
from vgdata.synth.shading import _facade_colours, _ground_colours, _occluder_pass, _sky_colours

__all__ = [
    "FACADE_LAYERS",
    "FACADE_RADIUS",
    "OCCLUDER_LAYERS",
    "OCCLUDER_RADIUS",
    "facade_hits",
    "render_panorama",
    "visible_facade_columns",
]

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
