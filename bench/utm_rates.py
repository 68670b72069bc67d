"""How fast vgdata.geo converts lat/lon to UTM, against the `utm` package.

Usage: ``python bench/utm_rates.py [--n 2000000] [--repeats 5]``

Two figures, each the median of ``repeats`` timed calls after one untimed warm-up call
(the warm-up builds the cached pyproj transformers; its time is reported separately):

1. one zone: n points in the San Francisco area, ``vgdata.geo.latlon_to_utm`` against
   ``utm.from_latlon`` on the same arrays (utm can only do arrays within one zone);
   target: vgdata at least 3x faster.
2. worldwide: n points uniform in lat [-80, 84], lon [-180, 180], every point in its own
   zone (120 EPSG codes); target: at least 3 M points/s.

Another script can ``from utm_rates import measure`` (with bench/ on sys.path) and print
the returned dict.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import pyproj
import utm

from vgdata.geo import latlon_to_utm

RATIO_TARGET = 3.0
WORLDWIDE_TARGET = 3_000_000  # points/s
SF_LAT = (37.6, 37.85)
SF_LON = (-122.55, -122.35)


def _median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(warm-up seconds, median seconds of `repeats` further calls)."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return warm, float(np.median(times))


def measure(n: int, repeats: int = 5, seed: int = 0) -> dict:
    """Time both conversions on n points; return rates (points/s), ratio and pass flags."""
    rng = np.random.default_rng(seed)
    sf_lat = rng.uniform(*SF_LAT, n)
    sf_lon = rng.uniform(*SF_LON, n)
    world_lat = rng.uniform(-80.0, 84.0, n)
    world_lon = rng.uniform(-180.0, 180.0, n)

    # The figures only count if both libraries give the same answer.
    ours = latlon_to_utm(sf_lat, sf_lon)
    e, north, zone, letter = utm.from_latlon(sf_lat, sf_lon)
    if not (np.all(ours.zone == zone) and np.all(ours.letter == letter)):
        raise AssertionError("vgdata.geo and utm disagree on the zone of the SF points")
    max_diff_m = float(max(np.abs(ours.east - e).max(), np.abs(ours.north - north).max()))

    _, t_ours = _median_seconds(lambda: latlon_to_utm(sf_lat, sf_lon), repeats)
    _, t_utm = _median_seconds(lambda: utm.from_latlon(sf_lat, sf_lon), repeats)
    world_cold, t_world = _median_seconds(lambda: latlon_to_utm(world_lat, world_lon), repeats)

    ratio = t_utm / t_ours
    world_rate = n / t_world
    return {
        "n": n,
        "repeats": repeats,
        "one_zone_vgdata_pts_s": n / t_ours,
        "one_zone_utm_pts_s": n / t_utm,
        "one_zone_ratio": ratio,
        "one_zone_max_diff_m": max_diff_m,
        "ratio_target": RATIO_TARGET,
        "ratio_pass": ratio >= RATIO_TARGET,
        "worldwide_vgdata_pts_s": world_rate,
        "worldwide_zones": int(np.unique(latlon_to_utm(world_lat[:100_000], world_lon[:100_000]).epsg).size),
        "worldwide_first_call_s": world_cold,
        "worldwide_target_pts_s": WORLDWIDE_TARGET,
        "worldwide_pass": world_rate >= WORLDWIDE_TARGET,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(r: dict) -> str:
    """The figures of `measure` as printable lines."""
    m = 1e6
    return "\n".join(
        [
            f"python {platform.python_version()}, numpy {np.__version__}, pyproj {pyproj.__version__}, "
            f"utm {getattr(utm, '__version__', '?')}, {os.cpu_count()} CPUs",
            f"(1) one zone, SF area, n={r['n']:,}, median of {r['repeats']} (max |diff| vs utm: "
            f"{r['one_zone_max_diff_m'] * 1000:.3f} mm)",
            f"    vgdata.geo.latlon_to_utm  {r['one_zone_vgdata_pts_s'] / m:6.2f} M pts/s",
            f"    utm.from_latlon           {r['one_zone_utm_pts_s'] / m:6.2f} M pts/s",
            f"    ratio                     {r['one_zone_ratio']:6.2f}x       "
            f"target >= {r['ratio_target']:g}x   {_verdict(r['ratio_pass'])}",
            f"(2) worldwide, per-point zones ({r['worldwide_zones']} EPSG codes), n={r['n']:,}, "
            f"median of {r['repeats']}",
            f"    vgdata.geo.latlon_to_utm  {r['worldwide_vgdata_pts_s'] / m:6.2f} M pts/s  "
            f"target >= {r['worldwide_target_pts_s'] / m:g} M   {_verdict(r['worldwide_pass'])}",
            f"    first (untimed) call, incl. building the 120 cached transformers: {r['worldwide_first_call_s']:.2f} s",
        ]
    )


def main() -> None:
    """Parse the command line, measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="points per array (default 2,000,000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per figure (default 5)")
    args = ap.parse_args()
    print(report(measure(args.n, args.repeats)))


if __name__ == "__main__":
    main()
