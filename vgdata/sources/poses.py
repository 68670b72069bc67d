"""Query images with 6DoF poses in a CSV -> an SF-XL ``queries_v2``-style collection.

CSV columns (names are case-insensitive; one row per image):

* ``path`` (required): the image, relative to the images folder (``poses_images``,
  default the CSV's folder); a path leading outside it is rejected.
* position, one of: ``lat, lon`` (WGS84 degrees) or ``utm_east, utm_north, utm_zone,
  utm_letter`` (metres; the letter selects the hemisphere and must be the point's latitude
  band). Where a row has both, lat/lon wins. UTM-only rows are checked and converted point
  by point with ``vgdata.utm_input.utm_to_latlon_checked`` and their UTM is then recomputed from
  that lat/lon (what the VPR-datasets-downloader does for these queries), so every row's
  UTM comes from ``vgdata.geo.latlon_to_utm``.
* orientation, one of: ``heading`` (degrees clockwise from north), ``yaw`` (an alias with
  the same convention; ``heading`` wins where a row has both), or a quaternion
  ``qx, qy, qz, qw`` (used where the row has no heading/yaw). Optional ``pitch``,
  ``roll`` (degrees, stored as given; not derived from the quaternion), ``altitude``
  (metres), ``timestamp`` (``YYYYMM[DD[_hhmmss]]`` or ISO 8601) and ``pano_id``
  (default: the file's stem; ``@``, ``/``, ``\\`` become ``_``).

Quaternion -> heading (REFERENCE.md e.2: the San Francisco Landmark queries, 598 with
reference poses, read by the downloader's ``download_san_francisco.py``). Each line of
``reference_poses_addTM_all_598.txt`` holds ``<_> <image_id> <x> <y> <w> <z> <utm_east>
<utm_north> <_>``: the downloader names the four quaternion values **x, y, w, z in file
order**. Our columns take the values by those names, not by position:

    qx = the file's x (3rd field)     qy = the file's y (4th field)
    qw = the file's w (5th field)     qz = the file's z (6th field)

and, after normalising (q / |q|, a no-op for a unit quaternion; the formula below is not
scale-invariant), ``yaw = atan2(2(qz*qx + qy*qw), -1 + 2(qx^2 + qy^2))`` and
``heading = degrees(yaw) mod 360`` (the downloader writes ``((yaw/pi + 1)*180 + 180) mod
360``, the same angle). With R the rotation matrix of (w=qw; qx, qy, qz) this is
``atan2(R[0,2], -R[2,2])``: the direction of the camera's z axis in the world x-z plane.
A rotation by t about y gives ``atan2(sin t, -cos t)``, i.e. heading 180 - t. Hand values:
identity (0, 0, 0, 1) -> 180; 90 deg about y (qy = qw = sqrt(1/2)) -> 90; -90 deg about y
-> 270; 180 deg about y (qy = 1) -> 0; 30 deg about y -> 150; a rotation about z alone ->
180. The heading is rounded to 1e-9 degrees (float noise must not move the name's floor()).
Whether the file's "w" really is the scalar part is not established; we reproduce the
downloader's headings, nothing more.

Each image is written like the photos source does (``vgdata.sources.photos``): upright by
EXIF orientation, RGB, shorter side ``short_side`` (LANCZOS, never upscaled), JPEG
``quality``, flat in ``crops/<collection>/`` under its ``@`` name (style "sfxl": the name
carries the heading as a floor() integer; pitch/roll/altitude only in the table, as the
downloader's names for these queries).

Rejects (source ``pose``, row = the 1-based CSV data row): ``missing value`` (empty path,
no complete position, no orientation), ``non-numeric value`` (unparseable or non-finite
number), ``bad UTM zone`` (zone not an integer in 1..60, or an unknown band letter),
``UTM out of range`` (easting more than 400 km from the central meridian, a northing in no
hemisphere),
``band letter inconsistent`` (a northing outside the letter's hemisphere, e.g. a southern
letter with a negative northing, or a latitude outside the letter's band), ``UTM not
transformable`` (PROJ refused the point; ``vgdata.utm_input.utm_to_latlon_checked``),
``bad quaternion`` (norm 0 or off 1 by more than 1%, or an optical axis pointing straight
up/down, where the heading is undefined), ``bad timestamp`` (also an impossible date such as
30 February), ``non-UTF-8 text`` (a row holding bytes that are not UTF-8), ``lat/lon out of
range``,
``path outside folder`` (path = the CSV for these), ``file not found``, ``unreadable image``
(path = the image file), ``unsupported pixel mode`` (see ``sources.photos``), ``duplicate
name`` (two rows giving the same ``@`` name: the later row is rejected, naming the first)
and ``name too long``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from vgdata import geo, utm_input
from vgdata.errors import UsageError
from vgdata.schema import REJECTS, from_columns
from vgdata.sources.common import add_reject, canonical_timestamp, new_rejects, safe_relative
from vgdata.sources.photos import (
    SHARD_FACTOR,
    add_utm_and_names,
    drop_duplicate_names,
    query_shard,
    sanitize_pano_id,
)

LATLON = ("lat", "lon")
UTM = ("utm_east", "utm_north", "utm_zone", "utm_letter")
ANGLES = ("heading", "yaw")
QUAT = ("qx", "qy", "qz", "qw")
OPTIONAL_NUMERIC = ("pitch", "roll", "altitude")
UTM_LETTERS = frozenset("CDEFGHJKLMNPQRSTUVWX")
QUAT_NORM_TOL = 0.01
"""A quaternion whose norm is off 1 by more than this is rejected (it is normalised otherwise)."""


class BadQuaternion(ValueError):
    """A quaternion that gives no heading (becomes a ``bad quaternion`` reject)."""


def quaternion_heading(qx: float, qy: float, qz: float, qw: float) -> float:
    """Heading in [0, 360) of the downloader's formula (see the module docstring for the mapping)."""
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if not norm > 0 or abs(norm - 1.0) > QUAT_NORM_TOL:
        raise BadQuaternion(f"norm {norm:.6g} is not 1 (+-{QUAT_NORM_TOL:g})")
    x, y, z, w = qx / norm, qy / norm, qz / norm, qw / norm
    a = 2.0 * (z * x + y * w)
    b = -1.0 + 2.0 * (x * x + y * y)
    if math.hypot(a, b) < 1e-9:
        raise BadQuaternion("optical axis is vertical: heading undefined")
    # Rounded to 1e-9 deg so float noise (89.99999999999999 for an exact 90) never moves the
    # name's floor() heading across an integer.
    return float(geo.wrap_heading(round(math.degrees(math.atan2(a, b)), 9)))


def missing_columns(columns: list[str]) -> list[str]:
    """What the CSV header lacks, one item per need (empty when it is usable)."""
    cols = set(columns)
    out = []
    if "path" not in cols:
        out.append("path")
    miss_ll = [c for c in LATLON if c not in cols]
    miss_utm = [c for c in UTM if c not in cols]
    if miss_ll and miss_utm:
        out.append(f"{', '.join(miss_ll)} (or {', '.join(miss_utm)} for a UTM position)")
    miss_q = [c for c in QUAT if c not in cols]
    if not any(c in cols for c in ANGLES) and miss_q:
        out.append("heading (or yaw, or qx, qy, qz, qw)" if len(miss_q) == 4 else f"{', '.join(miss_q)} (or heading)")
    return out


def _number(text: str) -> float | None:
    """A finite float, or None when ``text`` is not one."""
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def read_poses(csv_path: Path, image_dir: Path, collection: str) -> tuple[list[dict], pa.Table]:
    """Valid rows (CSV order, with ``name``, UTM, ``src`` relative to ``image_dir``) and the rejects."""
    from vgdata.sources.panoramas import lossy_cells, read_csv_text

    df, lossy = read_csv_text(csv_path, "poses CSV")
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = missing_columns(df.columns)
    if missing:
        raise UsageError(
            f"poses CSV {csv_path} lacks column(s) {'; '.join(missing)} (needs path, a position: lat, lon "
            f"or utm_east, utm_north, utm_zone, utm_letter, and an orientation: heading, yaw or qx, qy, qz, qw)"
        )
    text = {c: df[c].to_list() for c in df.columns}
    rej = new_rejects()
    csv_str = str(csv_path)

    def reject(row: int, reason: str, detail: str, path: str = csv_str) -> None:
        add_reject(rej, collection, "pose", path, row, reason, detail)

    rows: list[dict] = []
    for i in range(df.height):
        row = i + 1

        def cell(c: str, i: int = i) -> str:
            return (text[c][i] or "").strip() if c in text else ""

        bad_text = lossy_cells(text, i) if lossy else []
        if bad_text:
            cells = ", ".join(f"{c}={text[c][i]!r}" for c in bad_text)
            reject(row, "non-UTF-8 text", f"{cells} (bytes that are not UTF-8 shown as U+FFFD); save the CSV as UTF-8")
            continue

        given = cell("path")
        position = next((cs for cs in (LATLON, UTM) if all(c in text for c in cs) and all(map(cell, cs))), None)
        angle = next((c for c in ANGLES if cell(c)), None)
        orient = (angle,) if angle else (QUAT if all(c in text for c in QUAT) and all(map(cell, QUAT)) else None)
        needs = (("path", given), ("position", position), ("orientation", orient))
        blank = [what for what, ok in needs if not ok]
        if blank:
            reject(row, "missing value", f"empty {', '.join(blank)}")
            continue
        numeric = [c for c in (*position, *orient) if c != "utm_letter"]
        numeric += [c for c in OPTIONAL_NUMERIC if cell(c)]
        vals = {c: _number(cell(c)) for c in numeric}
        bad = [c for c, v in vals.items() if v is None]
        if bad:
            reject(row, "non-numeric value", ", ".join(f"{c}={cell(c)!r}" for c in bad))
            continue
        if position == UTM:
            zone, letter = vals["utm_zone"], cell("utm_letter").upper()
            if zone != int(zone) or not 1 <= zone <= 60 or letter not in UTM_LETTERS:
                reject(row, "bad UTM zone", f"utm_zone={cell('utm_zone')!r}, utm_letter={cell('utm_letter')!r}")
                continue
        if orient == QUAT:
            try:
                heading = quaternion_heading(*(vals[c] for c in QUAT))
            except BadQuaternion as e:
                reject(row, "bad quaternion", f"({', '.join(cell(c) for c in QUAT)}): {e}")
                continue
        else:
            heading = float(geo.wrap_heading(vals[orient[0]]))
        ts = None
        if cell("timestamp"):
            ts = canonical_timestamp(cell("timestamp"))
            if ts is None:
                reject(row, "bad timestamp", f"timestamp={cell('timestamp')!r} (want YYYYMM[DD[_hhmmss]] or ISO 8601)")
                continue
        rel = safe_relative(image_dir, given)
        if rel is None:
            reject(row, "path outside folder", f"path={given!r} is not inside {image_dir}")
            continue
        if not (image_dir / rel).is_file():
            reject(row, "file not found", str(image_dir / rel), path=str(image_dir / rel))
            continue
        r = {
            "row": row,
            "src": rel,
            "reject_path": csv_str,
            "pano_id": sanitize_pano_id(cell("pano_id") or Path(rel).stem),
            "heading": heading,
            "timestamp": ts[0] if ts else None,
            "year": ts[1] if ts else None,
            "month": ts[2] if ts else None,
            **{c: vals.get(c) for c in OPTIONAL_NUMERIC},
        }
        if position == LATLON:
            r.update(lat=vals["lat"], lon=vals["lon"])
        else:
            r.update(utm=(vals["utm_east"], vals["utm_north"], int(vals["utm_zone"]), cell("utm_letter").upper()))
        rows.append(r)

    from_utm = [r for r in rows if "utm" in r]
    if from_utm:
        e, n, z, letter = (np.array(v) for v in zip(*(r["utm"] for r in from_utm), strict=True))
        lat, lon, problems = utm_input.utm_to_latlon_checked(e, n, z, letter)
        for r, la, lo, problem in zip(from_utm, lat, lon, problems, strict=True):
            utm = r.pop("utm")
            if problem is not None:
                where = f"utm_east={utm[0]:.10g}, utm_north={utm[1]:.10g}, utm_zone={utm[2]}, utm_letter={utm[3]!r}"
                reject(r["row"], problem[0], f"{where}: {problem[1]}")
                r["lat"] = None
            else:
                r.update(lat=float(la), lon=float(lo))
        rows = [r for r in rows if r["lat"] is not None]
    valid = []
    if rows:
        reasons = geo.invalid_latlon_reasons(np.array([r["lat"] for r in rows]), np.array([r["lon"] for r in rows]))
        for r, why in zip(rows, reasons, strict=True):
            if why is not None:
                reject(r["row"], "lat/lon out of range", why)
            else:
                valid.append(r)
    add_utm_and_names(valid)
    valid = drop_duplicate_names(valid, rej, collection, "pose")
    rejects = from_columns(REJECTS, rej).sort_by([("row", "ascending")])
    return valid, rejects


def images_folder(config) -> Path:
    """The folder the CSV's ``path`` column is relative to."""
    return (config.poses_images or config.poses.parent).resolve()


def describe(config) -> dict:
    """The inputs, for the build's plan key: the CSV (path and content hash) and the images folder."""
    return {
        "poses": str(config.poses.resolve()),
        "poses_sha256": hashlib.sha256(config.poses.read_bytes()).hexdigest(),
        "poses_images": str(images_folder(config)),
    }


def plan(config, cat) -> tuple[list[tuple[str, dict]], pa.Table, str]:
    """Shards of valid CSV rows, the rejected rows, and ``crops/<collection>``."""
    from vgdata.jobs import cut_shards

    image_dir = images_folder(config)
    if not image_dir.is_dir():
        raise UsageError(f"poses images folder not found: {image_dir}")
    rows, rejects = read_poses(config.poses, image_dir, config.collection)
    common = {
        "folder": str(image_dir),
        "crop_root": str(cat.root / "crops" / config.collection),
        "short_side": config.short_side,
        "quality": config.quality,
        "source": "pose",
    }
    shards = cut_shards(cat.root, config.collection, rows, config.shard_size * SHARD_FACTOR, common)
    return shards, rejects, f"crops/{config.collection}"


run_shard = query_shard
