"""Flickr-style query photos with EXIF GPS -> an SF-XL ``queries_v1``-style collection.

Every ``.jpg``/``.jpeg``/``.png`` (any case) below the folder, in sorted order, is one
query. Planning reads each file's EXIF (headers only, no pixels):

* position: GPS IFD (0x8825) ``GPSLatitude``/``GPSLongitude`` as degrees, minutes,
  seconds rationals (1 to 3 of them; missing minutes/seconds count as 0) with
  ``GPSLatitudeRef``/``GPSLongitudeRef`` (``S``/``W`` negative; a missing or unknown
  reference letter is rejected, never guessed);
* ``GPSAltitude`` (metres; ``GPSAltitudeRef`` 1 = below sea level, negative);
* ``GPSImgDirection`` -> ``heading`` (degrees, wrapped to [0, 360)); ``GPSImgDirectionRef``
  may be ``T`` (true north) or ``M`` (magnetic): both are accepted and not recorded.
  Without it the heading is null and the name's heading field empty, as SF-XL's
  queries_v1 (README: "queries_v1 images have an empty heading");
* ``DateTimeOriginal`` (0x9003 in the Exif IFD 0x8769), else ``DateTime`` (0x0132),
  ``YYYY:MM:DD hh:mm:ss`` -> timestamp ``YYYYMMDD_hhmmss``, year, month. A missing,
  unparseable or impossible date (``0000:00:00 00:00:00``, cameras' "unset" value; 30
  February) leaves them null: the position still makes the photo a query, and no invalid
  date reaches the table.

``pano_id`` is the file's stem with ``@``, ``/`` and ``\\`` replaced by ``_``. Each photo
is written as ``crops/<collection>/<@ name>`` (flat, SF-XL test layout; style "sfxl"
names, extension ``.jpg``): decoded, turned upright by its EXIF orientation
(``ImageOps.exif_transpose``), converted to RGB, resized so that its shorter side is
``short_side`` pixels (never upscaled; 0 keeps the size) and saved as JPEG at ``quality``
without EXIF. 16-bit greyscale is scaled to 8 bits (0..65535 -> 0..255), 8-bit modes are
converted; ``I``/``F`` and other modes without known levels are rejected (``unsupported
pixel mode``; ``sources.common.rgb8``). Resizing: JPEG sources are first decoded at a
reduced DCT scale (Pillow's draft mode, 1/2, 1/4 or 1/8, never below the target; what
``Image.thumbnail`` does), then resampled with **LANCZOS** to the exact size; the longer
side is rounded half up.

Rejects (source ``photo``, path = the photo file, row null): ``no GPS`` (no GPS IFD, or no
latitude/longitude in it), ``bad GPS`` (malformed or non-finite rationals, a zero
denominator, a missing/unknown reference letter, an unparseable EXIF block; this also
covers a malformed altitude or direction), ``lat/lon out of range`` (outside UTM's range,
``vgdata.geo``), ``unreadable image`` (not an image, or decoding fails: truncated file)
``duplicate name`` (two photos giving the same ``@`` name, e.g. ``a.jpg`` and
``a.png`` with the same position: the later one in sorted order is rejected, naming the
first), ``name too long`` (an ``@`` name over 245 bytes, from a long file stem), and from the
folder walk ``path outside folder`` (a symlink leading out of the folder: never followed),
``file not found`` (a broken symlink) and ``non-UTF-8 file name`` (the name escaped).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from vgdata import geo
from vgdata.fsio import atomic_path
from vgdata.schema import IMAGES, PANORAMAS, REJECTS, from_columns
from vgdata.sources.common import (
    UnsupportedMode,
    add_reject,
    add_utm,
    canonical_timestamp,
    decode_errors,
    decode_rgb8,
    image_id,
    name_too_long,
    new_rejects,
    scan_images,
    sfxl_name,
)
from vgdata.sources.panoramas import write_shard_tables

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
DATETIME = 0x0132
DATETIME_ORIGINAL = 0x9003
# Tags inside the GPS IFD.
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
GPS_ALT_REF, GPS_ALT = 5, 6
GPS_DIR_REF, GPS_DIR = 16, 17

SHARD_FACTOR = 4
"""Shards hold ``shard_size * 4`` photos (decode + resize of one photo ~ 1/4 of a panorama's crops)."""

_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")


class BadGPS(ValueError):
    """A GPS tag that is present but cannot be read (becomes a ``bad GPS`` reject)."""


def sanitize_pano_id(text: str) -> str:
    """``text`` with the characters that would break an '@' name (``@``, ``/``, ``\\``) replaced by ``_``."""
    return re.sub(r"[@/\\]", "_", text)


def exif_timestamp(text: object) -> tuple[str, int, int | None] | None:
    """EXIF ``YYYY:MM:DD hh:mm:ss`` -> (``YYYYMMDD_hhmmss``, year, month); None if not a valid date."""
    if not isinstance(text, str):
        return None
    m = _EXIF_DATE.match(text.strip().strip("\x00"))
    if not m:
        return None
    y, mo, d, h, mi, s = m.groups()
    at = f"{y}{mo}{d}" + (f"_{h}{mi}{s or '00'}" if h else "")
    return canonical_timestamp(at)


def _rational(value: object, what: str) -> float:
    """One EXIF rational as a finite float (IFDRational, int or float); BadGPS otherwise."""
    if getattr(value, "denominator", 1) == 0:
        raise BadGPS(f"{what} has a zero denominator")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadGPS(f"{what}={value!r} is not a rational") from None
    if not math.isfinite(x):
        raise BadGPS(f"{what}={value!r} is not finite")
    return x


def _dms(value: object, what: str) -> float:
    """Degrees from 1-3 EXIF rationals (degrees, minutes, seconds)."""
    parts = value if isinstance(value, tuple | list) else (value,)
    if not 1 <= len(parts) <= 3:
        raise BadGPS(f"{what} has {len(parts)} values, expected degrees, minutes, seconds")
    d, m, s = ([_rational(p, what) for p in parts] + [0.0, 0.0])[:3]
    if d < 0 or m < 0 or s < 0:
        raise BadGPS(f"{what}={(d, m, s)} has a negative part")
    return d + m / 60.0 + s / 3600.0


def _ref(value: object, what: str, allowed: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    ref = value.strip().strip("\x00").strip().upper() if isinstance(value, str) else ""
    if len(ref) != 1 or ref not in allowed:
        raise BadGPS(f"{what}={value!r} is not one of {', '.join(allowed)}")
    return ref


def _altitude_below(value: object) -> bool:
    """GPSAltitudeRef: 0 = above sea level, 1 = below (BYTE: read back as bytes or int)."""
    if isinstance(value, bytes | bytearray):
        value = value[0] if len(value) == 1 else None
    elif isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if value not in (0, 1):
        raise BadGPS(f"GPSAltitudeRef={value!r} is not 0 or 1")
    return value == 1


def gps_from_ifd(gps: dict) -> dict | None:
    """lat, lon (signed degrees), altitude (m or None), heading (deg or None) from a GPS IFD.

    None when latitude or longitude is absent; BadGPS when a present tag cannot be read.
    """
    if GPS_LAT not in gps or GPS_LON not in gps:
        return None
    lat = _dms(gps[GPS_LAT], "GPSLatitude")
    lon = _dms(gps[GPS_LON], "GPSLongitude")
    if _ref(gps.get(GPS_LAT_REF), "GPSLatitudeRef", "NS") == "S":
        lat = -lat
    if _ref(gps.get(GPS_LON_REF), "GPSLongitudeRef", "EW") == "W":
        lon = -lon
    altitude = None
    if GPS_ALT in gps:
        altitude = _rational(gps[GPS_ALT], "GPSAltitude")
        if GPS_ALT_REF in gps and _altitude_below(gps[GPS_ALT_REF]):
            altitude = -altitude
    heading = None
    if GPS_DIR in gps:
        heading = float(geo.wrap_heading(_rational(gps[GPS_DIR], "GPSImgDirection")))
    return {"lat": lat, "lon": lon, "altitude": altitude, "heading": heading}


def read_photo(path: Path) -> tuple[dict | None, str, str]:
    """EXIF metadata of one photo: (fields, "", "") or (None, reject reason, detail). Reads headers only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            try:
                exif = im.getexif()
                gps = dict(exif.get_ifd(GPS_IFD))
                sub = exif.get_ifd(EXIF_IFD)
                dates = (sub.get(DATETIME_ORIGINAL), exif.get(DATETIME))
            except Exception as e:  # a corrupt EXIF block can fail in many ways inside Pillow
                return None, "bad GPS", f"cannot parse EXIF: {type(e).__name__}: {e}"
    except decode_errors() as e:
        return None, "unreadable image", f"{type(e).__name__}: {e}"
    if not gps:
        return None, "no GPS", "no GPS IFD in the EXIF data"
    try:
        fields = gps_from_ifd(gps)
    except BadGPS as e:
        return None, "bad GPS", str(e)
    if fields is None:
        missing = [n for t, n in ((GPS_LAT, "GPSLatitude"), (GPS_LON, "GPSLongitude")) if t not in gps]
        return None, "no GPS", f"GPS IFD lacks {', '.join(missing)}"
    ts = next((t for t in map(exif_timestamp, dates) if t is not None), None)
    fields.update(
        timestamp=ts[0] if ts else None,
        year=ts[1] if ts else None,
        month=ts[2] if ts else None,
    )
    return fields, "", ""


def add_utm_and_names(rows: list[dict]) -> None:
    """Fill utm_* and the '@' ``name`` of each row (lat/lon valid, sfxl style, ``.jpg``)."""
    add_utm(rows)
    for r in rows:
        r["name"] = sfxl_name(r, r["heading"])


def drop_duplicate_names(rows: list[dict], rej: dict[str, list], collection: str, source: str) -> list[dict]:
    """Keep the first row of each name; later ones become ``duplicate name`` rejects (naming the first),
    and a name too long to write becomes a ``name too long`` reject."""
    first: dict[str, dict] = {}
    kept = []
    for r in rows:
        too_long = name_too_long(r["name"])
        if too_long:
            add_reject(rej, collection, source, r["reject_path"], r.get("row"), "name too long", too_long)
            continue
        seen = first.get(r["name"])
        if seen is not None:
            where = f"row {seen['row']} ({seen['src']})" if seen.get("row") is not None else seen["src"]
            add_reject(rej, collection, source, r["reject_path"], r.get("row"), "duplicate name",
                       f"{r['name']} already made from {where}")  # fmt: skip
            continue
        first[r["name"]] = r
        kept.append(r)
    return kept


def describe(config) -> dict:
    """The inputs, for the build's plan key: the photo folder."""
    return {"photos": str(config.photos.resolve())}


def plan(config, cat) -> tuple[list[tuple[str, dict]], pa.Table, str]:
    """Read every photo's EXIF; shards of the usable ones, the rejects, and ``crops/<collection>``."""
    from vgdata.jobs import cut_shards

    folder = config.photos.resolve()
    collection = config.collection
    rej = new_rejects()
    rows: list[dict] = []
    paths, refused = scan_images(folder)
    for path, reason, detail in refused:
        add_reject(rej, collection, "photo", path, None, reason, detail)
    for rel in paths:
        full = folder / rel
        fields, reason, detail = read_photo(full)
        if fields is None:
            add_reject(rej, collection, "photo", str(full), None, reason, detail)
            continue
        bad = geo.invalid_latlon_reasons(np.array([fields["lat"]]), np.array([fields["lon"]]))[0]
        if bad is not None:
            add_reject(rej, collection, "photo", str(full), None, "lat/lon out of range", bad)
            continue
        pano_id = sanitize_pano_id(Path(rel).stem)
        rows.append({**fields, "pano_id": pano_id, "src": rel, "reject_path": str(full), "row": None})
    add_utm_and_names(rows)
    rows = drop_duplicate_names(rows, rej, collection, "photo")
    common = {
        "folder": str(folder),
        "crop_root": str(cat.root / "crops" / collection),
        "short_side": config.short_side,
        "quality": config.quality,
        "source": "photo",
    }
    shards = cut_shards(cat.root, collection, rows, config.shard_size * SHARD_FACTOR, common)
    return shards, from_columns(REJECTS, rej), f"crops/{collection}"


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size after scaling the shorter side down to ``short_side`` (never up; 0 keeps the size).

    The longer side is rounded half up: 1200x800 -> 720x480, 801x1201 -> 480x720.
    """
    short = min(width, height)
    if short_side <= 0 or short <= short_side:
        return width, height
    if width <= height:
        return short_side, max(1, math.floor(height * short_side / width + 0.5))
    return max(1, math.floor(width * short_side / height + 0.5)), short_side


def write_query_image(src: Path, dst: Path, short_side: int, quality: int) -> tuple[int, int]:
    """Decode ``src``, make it upright (EXIF orientation), 8-bit RGB, resize (LANCZOS), save JPEG ``dst``.

    Written to a temporary name in the same folder, then renamed. Returns the written size.
    Raises what Pillow raises for unreadable or truncated files.
    """
    return save_query_image(read_query_image(src, short_side), dst, quality)


def read_query_image(src: Path, short_side: int):
    """Decode ``src`` upright (EXIF orientation), 8-bit RGB, its shorter side ``short_side`` (LANCZOS;
    never upscaled; 0 keeps the size). Raises ``UnsupportedMode`` and what ``decode_errors`` lists."""
    from PIL import Image

    rgb = decode_rgb8(src, draft=short_side)  # DCT downscale of a JPEG, short side stays >= short_side
    size = output_size(*rgb.size, short_side)
    return rgb.resize(size, Image.Resampling.LANCZOS) if size != rgb.size else rgb


def save_query_image(rgb, dst: Path, quality: int) -> tuple[int, int]:
    """Save ``rgb`` as JPEG ``dst`` (a temporary name in the same folder, then renamed); its size.

    A failure here (disk full, permission) is the run's, not the image's: it propagates."""
    with atomic_path(dst) as tmp:
        rgb.save(tmp, format="JPEG", quality=quality)
    return rgb.size


def query_shard(payload: dict) -> dict:
    """Write one shard of query images (photos or poses) and its table parts.

    ``payload``: ``catalog``, ``collection``, ``shard``, ``folder`` (the items' ``src`` are
    relative to it), ``crop_root``, ``short_side``, ``quality``, ``source`` (the rejects'
    source: ``photo`` or ``pose``) and ``items`` (rows from ``plan``, each with ``name``).
    """
    collection, source = payload["collection"], payload["source"]
    folder, crop_root = Path(payload["folder"]), Path(payload["crop_root"])
    crop_root.mkdir(parents=True, exist_ok=True)
    img: dict[str, list] = {f.name: [] for f in IMAGES}
    rej = new_rejects()
    for r in payload["items"]:
        src = folder / r["src"]
        try:
            rgb = read_query_image(src, payload["short_side"])
        except FileNotFoundError:
            add_reject(rej, collection, source, str(src), r.get("row"), "file not found", str(src))
            continue
        except UnsupportedMode as e:
            add_reject(rej, collection, source, str(src), r.get("row"), "unsupported pixel mode", str(e))
            continue
        except decode_errors() as e:
            add_reject(rej, collection, source, str(src), r.get("row"), "unreadable image", f"{type(e).__name__}: {e}")
            continue
        width, height = save_query_image(rgb, crop_root / r["name"], payload["quality"])
        row = {
            **r,
            "image_id": image_id(collection, r["name"]),
            "path": r["name"],
            "collection": collection,
            "tile": None,
            "width": width,
            "height_px": height,
        }
        for k in img:
            img[k].append(row.get(k))
    tables = {
        "images": from_columns(IMAGES, img),
        "panoramas": PANORAMAS.empty_table(),
        "rejects": from_columns(REJECTS, rej),
    }
    return write_shard_tables(payload["catalog"], collection, payload["shard"], tables)


run_shard = query_shard
