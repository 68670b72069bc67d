"""Small generated panoramas for fast tests (a test fixture, not library code).

``make_raw_panoramas`` writes what a user would bring to ``build-catalog``: 2:1
equirectangular JPEG panoramas plus ``panoramas.csv`` (pano_id, lat, lon, heading,
timestamp, pitch, roll, altitude). Panorama ``i`` lies ``i * spacing_m`` metres north and
``i * spacing_m`` metres east of ``origin`` (a straight north-east line; consecutive panoramas
are ``spacing_m * sqrt(2)`` metres apart); each column's colour encodes its azimuth (centre
column = the panorama's heading, degrees clockwise from north), so crops can be checked by eye. Tests use it
where a real scene is not needed; the scene-dependent tests use ``vgdata synth``.

Importable as ``from raw_panoramas import make_raw_panoramas`` from every test file
(``tests/conftest.py`` puts ``tests/`` on ``sys.path``) and from ``bench/`` scripts that add
``tests/`` to ``sys.path`` themselves.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

SF_ORIGIN = (37.7749, -122.4194)


def make_raw_panoramas(
    out_dir: str | Path,
    n: int = 8,
    *,
    width: int = 832,
    seed: int = 0,
    origin: tuple[float, float] = SF_ORIGIN,
    spacing_m: float = 5.0,
    years: tuple[int, ...] = (2013, 2017),
) -> tuple[Path, Path]:
    """Write ``n`` panoramas (``width`` x ``width/2``) and their CSV; return (folder, csv path)."""
    from PIL import Image

    out = Path(out_dir)
    pano_dir = out / "panoramas"
    pano_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h = width // 2
    cols = np.arange(width)
    rows = []
    for i in range(n):
        heading = float(rng.uniform(0, 360))
        # Azimuth of each column (centre column = heading), drawn as hue-like stripes.
        az = (heading + (cols + 0.5 - width / 2) * 360 / width) % 360
        base = np.stack(
            [
                127 + 100 * np.sin(np.radians(az)),
                127 + 100 * np.cos(np.radians(az)),
                (az / 360 * 255),
            ],
            axis=-1,
        )
        img = np.broadcast_to(base[None, :, :], (h, width, 3)).copy()
        img += rng.normal(0, 12, size=img.shape)
        img[: h // 3] = [135, 180, 235]  # sky
        pano_id = f"pano{seed:03d}x{i:05d}"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(pano_dir / f"{pano_id}.jpg", quality=90)
        d = i * spacing_m
        lat = origin[0] + d / 111_320.0
        lon = origin[1] + d / (111_320.0 * math.cos(math.radians(origin[0])))
        year = years[i % len(years)]
        rows.append(
            [pano_id, f"{lat:.7f}", f"{lon:.7f}", f"{heading:.3f}", f"{year}{1 + i % 12:02d}", "0", "0", "12.5"]
        )
    csv_path = out / "panoramas.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pano_id", "lat", "lon", "heading", "timestamp", "pitch", "roll", "altitude"])
        w.writerows(rows)
    return pano_dir, csv_path
