"""Shading for :mod:`vgdata.synth.render`: the colours of facade, ground, sky and occluder pixels.

Each function takes the pixels that one step of :func:`vgdata.synth.render.render_panorama`
assigned to it (flat pixel indices, distances in metres, elevations and azimuths in radians)
and returns float32 RGB in [0, 255] before the final rounding; every pixel is shaded on its
own, from the scene, the year state and per-pixel hashes only, so a window of columns gets
exactly the colours a full render gives it.
"""

from __future__ import annotations

import math

import numpy as np

from vgdata.synth.appearance import _Facades, _noise2, _Prims, _u32, _Year
from vgdata.synth.scene import Scene, unit

_GROUND_DETAIL = 600.0

# Facade pixel categories (index into the per-column palette).
_WALL, _TRIM, _GLASS, _FRAME, _DOOR, _SIGN, _LETTER, _LIT, _SHOP = range(9)
_NCAT = 9
# Bits of the per-column facade flags.
_F_WIN, _F_FRAME, _F_MULL, _F_DOOR, _F_SIGN, _F_SHOP, _F_SHOPWIN, _F_LETTER, _F_FLAT = (1 << i for i in range(9))


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
