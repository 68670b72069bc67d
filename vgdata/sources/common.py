"""Helpers shared by the sources: stable ids, timestamps, safe relative paths, image listings,
'@' names and reject rows."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path, PurePosixPath

from vgdata.names import make_name
from vgdata.schema import REJECTS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_AT_TS = re.compile(r"^\d{4}(\d{2}(\d{2}(_\d{2}(\d{2}(\d{2})?)?)?)?)?$")
_ISO_TS = re.compile(
    r"^(?P<y>\d{4})(-(?P<mo>\d{2})(-(?P<d>\d{2})([T ](?P<h>\d{2}):(?P<mi>\d{2})(:(?P<s>\d{2})(\.\d+)?)?)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


def image_id(collection: str, path: str) -> int:
    """Stable 63-bit id of an image: blake2b of ``"<collection>/<path>"``, non-negative int64."""
    digest = hashlib.blake2b(f"{collection}/{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def canonical_timestamp(text: str | None) -> tuple[str, int, int | None] | None:
    """Parse a capture time into the '@' text form ``YYYY[MM[DD[_hh[mm[ss]]]]]``, year, month.

    Accepts that form itself (SF-XL uses ``YYYYMM``) and ISO 8601 (``2013-11``,
    ``2013-11-05``, ``2013-11-05T14:03:00Z``). Returns None when it is neither or when
    month/day/hour/minute/second are out of range.
    """
    if text is None:
        return None
    s = text.strip()
    if _AT_TS.match(s):
        parts = [s[0:4], s[4:6], s[6:8], s[9:11], s[11:13], s[13:15]]
    else:
        m = _ISO_TS.match(s)
        if not m:
            return None
        parts = [m["y"], m["mo"] or "", m["d"] or "", m["h"] or "", m["mi"] or "", m["s"] or ""]
    limits = [(0, 9999), (1, 12), (1, 31), (0, 23), (0, 59), (0, 59)]
    for part, (lo, hi) in zip(parts, limits, strict=True):
        if part and not lo <= int(part) <= hi:
            return None
    y, mo, d, h, mi, sec = parts
    out = y + mo + d + (f"_{h}{mi}{sec}" if h else "")
    return out, int(y), (int(mo) if mo else None)


def safe_relative(base: Path, rel: str) -> str | None:
    """``rel`` as a normalised '/'-separated path inside ``base``, or None if it points outside."""
    rel = rel.replace("\\", "/").strip()
    if not rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return None
    parts: list[str] = []
    for part in PurePosixPath(rel).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        return None
    resolved = (base / Path(*parts)).resolve()
    try:
        resolved.relative_to(base.resolve())
    except ValueError:  # a symlink inside the folder leading out of it
        return None
    return "/".join(parts)


def lat_folder(lat: float) -> str:
    """SF-XL's sub-folder for a crop: latitude truncated (not rounded) to 2 decimals, e.g. ``37.70``."""
    t = math.trunc(round(lat * 100, 6)) / 100
    return f"{t:.2f}"


def add_utm(rows: list[dict]) -> None:
    """Fill ``utm_east, utm_north`` (metres), ``utm_zone``, ``utm_letter`` of row dicts from their valid lat/lon."""
    if not rows:
        return
    import numpy as np

    from vgdata import geo

    utm = geo.latlon_to_utm(np.array([r["lat"] for r in rows]), np.array([r["lon"] for r in rows]))
    for j, r in enumerate(rows):
        r.update(
            utm_east=float(utm.east[j]),
            utm_north=float(utm.north[j]),
            utm_zone=int(utm.zone[j]),
            utm_letter=str(utm.letter[j]),
        )


def list_images(folder: Path) -> list[str]:
    """Relative '/'-paths of the images below ``folder``, sorted (our own temporary files skipped)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".tmp-")
    )


def sfxl_name(row: dict, heading: float) -> str:
    """The '@' name (SF-XL style, ``.jpg``) of an image described by ``row`` (utm_*, lat, lon,
    pano_id, timestamp or None) looking at ``heading`` degrees."""
    return make_name(
        utm_east=row["utm_east"],
        utm_north=row["utm_north"],
        utm_zone=row["utm_zone"],
        utm_letter=row["utm_letter"],
        lat=row["lat"],
        lon=row["lon"],
        pano_id=row["pano_id"],
        heading=heading,
        timestamp=row["timestamp"] or "",
        style="sfxl",
    )


def new_rejects() -> dict[str, list]:
    """Empty reject columns, to fill with :func:`add_reject` and turn into a ``rejects`` table."""
    return {f.name: [] for f in REJECTS}


def add_reject(rej: dict[str, list], collection: str, source: str, path: str, row, reason: str, detail: str) -> None:
    """Append one reject: ``row`` is the 1-based line of a list or CSV file, or None."""
    for k, v in zip(REJECTS.names, (collection, source, path, row, reason, detail), strict=True):
        rej[k].append(v)
