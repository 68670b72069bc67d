"""Helpers shared by the sources: stable ids, timestamps, safe relative paths, image listings,
pixel modes, '@' names and reject rows.

File names that are not UTF-8 (Linux hands them to Python with surrogate escapes) are
rejected (``non-UTF-8 file name``), never imported: a catalog's ``path`` column is UTF-8
text that every reader must be able to open again, and no escape of the name would open
the file. The reject row shows the name with ``\\xNN`` escapes (:func:`display_path`).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path, PurePosixPath

from vgdata.names import days_in_month, make_name
from vgdata.schema import REJECTS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

MAX_NAME_BYTES = 255 - len(".tmp-.part")
"""Longest file name (UTF-8 bytes) we write: 255 on common file systems, less our temporary affixes."""

RGB_CONVERTIBLE = frozenset({"1", "L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
"""8-bit pixel modes that Pillow's ``convert("RGB")`` turns into RGB with the right levels
(alpha is dropped). 16-bit greyscale (``I;16*``) is scaled by :func:`rgb8`; any other mode
(``I``, ``F``: 32-bit values of unknown range; ``RGBa``, ``La``, ``LAB``, ``HSV``) is refused."""

SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

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
    if d and int(d) > days_in_month(int(y), int(mo)):  # 30 February, 31 April
        return None
    out = y + mo + d + (f"_{h}{mi}{sec}" if h else "")
    return out, int(y), (int(mo) if mo else None)


def is_utf8(text: str) -> bool:
    """False when ``text`` holds surrogate escapes (a file name whose bytes are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as UTF-8 text: bytes that are not UTF-8 shown as ``\\xNN`` escapes (for messages)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def safe_relative(base: Path, rel: str, *, follow_links: bool = True) -> str | None:
    """``rel`` as a normalised '/'-separated path inside ``base``, or None if it points outside
    (or holds a NUL character, which no file name can).

    ``follow_links=False`` checks the text only (absolute, drive or ``..`` leading out), without
    touching the file system: for millions of metadata rows, whose files are then opened through
    :func:`inside` (which resolves symlinks) in the workers.
    """
    rel = rel.replace("\\", "/").strip()
    if not rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or "\x00" in rel:
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
    if not follow_links:
        return "/".join(parts)
    resolved = (base / Path(*parts)).resolve()
    try:
        resolved.relative_to(base.resolve())
    except ValueError:  # a symlink inside the folder leading out of it
        return None
    return "/".join(parts)


def inside(base: Path, path: Path) -> bool:
    """True when ``path``, symlinks resolved, lies inside ``base`` (resolved): a link out of it is refused."""
    try:
        path.resolve().relative_to(base.resolve())
    except (ValueError, OSError, RuntimeError):  # outside, unreadable, or a symlink loop
        return False
    return True


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
    """Relative '/'-paths of the images below ``folder``, sorted (our own temporary files skipped).

    Only the paths :func:`scan_images` accepts; use that to see what was left out and why.
    """
    return scan_images(folder)[0]


def scan_images(folder: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The images below ``folder`` (as :func:`list_images`) and the ones refused.

    Returns ``(paths, refused)``: ``paths`` sorted relative '/'-paths; ``refused`` sorted
    ``(path, reason, detail)`` with ``path`` the file's full path (non-UTF-8 bytes escaped).
    Refused: ``path outside folder`` (a symlink leading out of ``folder``: never followed,
    like an explicit path that does), ``file not found`` (a broken symlink) and ``non-UTF-8
    file name``. Symlinked sub-folders are not descended into (``Path.rglob``).
    """
    base = folder.resolve()
    paths: list[str] = []
    refused: list[tuple[str, str, str]] = []
    for p in folder.rglob("*"):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith(".tmp-"):
            continue
        if p.is_symlink():
            target = p.resolve()
            try:
                target.relative_to(base)
            except ValueError:
                where = f"symlink {display_path(p)} leads to {display_path(target)}, outside {display_path(folder)}"
                refused.append((display_path(p), "path outside folder", where))
                continue
            if not target.exists():
                refused.append((display_path(p), "file not found", f"broken symlink to {display_path(target)}"))
                continue
        if not p.is_file():
            continue
        rel = p.relative_to(folder).as_posix()
        if not is_utf8(rel):
            detail = "the file name's bytes are not UTF-8 (shown with \\x escapes); rename it to UTF-8"
            refused.append((display_path(p), "non-UTF-8 file name", detail))
            continue
        paths.append(rel)
    return sorted(paths), sorted(refused)


def name_too_long(name: str) -> str | None:
    """Why a file ``name`` we would write is too long for the file system, or None."""
    size = len(name.encode("utf-8"))
    if size <= MAX_NAME_BYTES:
        return None
    return f"{name[:60]}... is {size} bytes; at most {MAX_NAME_BYTES} fit (shorten the pano_id or file stem)"


class UnsupportedMode(ValueError):
    """A pixel mode we cannot turn into 8-bit RGB with known levels (becomes an ``unsupported pixel mode`` reject)."""


def exif_orientation(image) -> int:
    """The EXIF orientation (1..8) of a PIL image from its header; 1 when absent, unknown or unreadable."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # a corrupt EXIF block: no orientation can be read, so none is applied
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(image) -> tuple[int, int]:
    """``(width, height)`` of a PIL image once turned upright by its EXIF orientation (header only)."""
    w, h = image.size
    return (h, w) if exif_orientation(image) >= 5 else (w, h)


def upright(image):
    """The PIL image turned upright by its EXIF orientation (``ImageOps.exif_transpose``); loads pixels."""
    from PIL import ImageOps

    if exif_orientation(image) == 1:
        image.load()
        return image
    return ImageOps.exif_transpose(image)


@cache
def decode_errors() -> tuple[type[BaseException], ...]:
    """What Pillow raises for a file it cannot decode: a missing, truncated, corrupt or hostile image.

    Beyond OSError and ValueError its plugins raise SyntaxError, EOFError, struct.error, IndexError,
    KeyError, TypeError or ZeroDivisionError on corrupt headers, and DecompressionBombError for
    an image over its pixel limit. Catch these around decoding only, never around our own code.
    """
    from PIL import Image

    return (
        OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
        ZeroDivisionError, Image.DecompressionBombError,
    )  # fmt: skip


def decode_rgb8(path: Path, *, check: Callable[[int, int], None] | None = None, draft: int = 0):
    """Decode the image at ``path``: upright by its EXIF orientation, 8-bit RGB (:func:`rgb8`).

    ``check(width, height)`` sees the upright size from the header, before any pixel is
    decoded (it may raise to refuse the image). ``draft > 0``: a JPEG is decoded at a reduced
    DCT scale whose shorter side stays >= ``draft`` pixels (Pillow's draft mode). Raises
    :class:`UnsupportedMode` and what :func:`decode_errors` lists.
    """
    from PIL import Image

    with Image.open(path) as im:
        if check is not None:
            check(*upright_size(im))
        if draft > 0 and im.format == "JPEG":
            im.draft("RGB", (draft, draft))
        return rgb8(upright(im))  # loaded: usable after the file is closed


def rgb8(image):
    """``image`` as 8-bit RGB with the right levels (a PIL image; the same object when already RGB).

    8-bit modes (:data:`RGB_CONVERTIBLE`) go through ``convert("RGB")`` (alpha dropped);
    16-bit greyscale (``I;16``, ``I;16B``, ...) is scaled from 0..65535 to 0..255 with rounding,
    ``round(v / 257)``, so 65535 is white and 32768 mid-grey (Pillow's own conversion clips
    everything above 255 to white). Raises :class:`UnsupportedMode` for any other mode.
    """
    import numpy as np
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in RGB_CONVERTIBLE:
        return image.convert("RGB")
    if mode in SIXTEEN_BIT:
        values = np.asarray(image).astype(np.uint32)
        grey = ((values + 128) // 257).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    raise UnsupportedMode(unsupported_mode_detail(mode))


def unsupported_mode_detail(mode: str) -> str:
    """The reject detail for a pixel mode :func:`rgb8` refuses."""
    what = {
        "I": "32-bit integer pixels of unknown range",
        "F": "32-bit float pixels of unknown range",
    }.get(mode, "a pixel mode with no known 8-bit RGB levels")
    return f"mode {mode}: {what}; convert the image to 8-bit RGB or 16-bit greyscale first"


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
