"""The synthetic city's per-year occluders: parked vehicles, trees and street-light poles.

Part of :mod:`vgdata.synth.scene` (which re-exports :func:`occluders`); see its docstring for
the frame and the determinism rules. Positions in metres in the scene frame, headings in
degrees clockwise from north, colours RGB in [0, 255].
"""

from __future__ import annotations

import numpy as np

from vgdata.synth.geometry import Occluder, Scene, Street, unit

# Purpose tags for the integer hash (never change them: they fix the city).
_TAG_CARS = 0xCA2501
_TAG_TREES = 0x72EE01
_TAG_TREE_YEAR = 0x72EE02

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
