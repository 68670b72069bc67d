"""Ray casting for :mod:`vgdata.synth.render`: horizontal column rays against facades and occluders.

Column ``j`` of a ``W``-wide panorama looks along ``heading + (j + 0.5 - W / 2) * 360 / W``
degrees (clockwise from north); a ray from ``(x, y)`` (metres east/north in the scene frame)
meets facade segments (facing the camera, within :data:`FACADE_RADIUS`) and occluder
primitives (within :data:`OCCLUDER_RADIUS`); the nearest few per column are kept, as
distances in metres along the ray.
"""

from __future__ import annotations

import numpy as np

from vgdata.synth.appearance import _Prims
from vgdata.synth.scene import Scene

#: Facade segments farther than this from the camera (metres) are not drawn.
FACADE_RADIUS = 200.0
#: Facade hits kept per column (nearest first): how many buildings can show above each other.
FACADE_LAYERS = 3
#: Occluders farther than this (metres) are not drawn.
OCCLUDER_RADIUS = 90.0
#: Occluder primitives kept per column (nearest first).
OCCLUDER_LAYERS = 3


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
