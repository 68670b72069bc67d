"""Import an existing folder of '@'-named images (CosPlace, VPR-datasets-downloader, SF-XL).

The images are not copied: ``path`` is relative to the imported folder, which becomes
the collection's image root. The file list is ``<DIR>_images_paths.txt`` when that file
exists next to the folder (CosPlace's convention; its order is kept), otherwise every
``.jpg``/``.jpeg``/``.png`` below the folder in sorted order. Metadata comes from the
file name only (parsed once, here): UTM and heading verbatim from fields 1-4 and 9.
Width and height are read from the image header; pixels are not decoded.

Because the files are used as they are (the trainer reads them with ``convert("RGB")``),
an image that would be read wrongly is rejected, not imported: ``EXIF-rotated image``
(an EXIF orientation other than 1: it would be read on its side or upside down) and
``unsupported pixel mode`` (16-bit greyscale would read as white, ``I``/``F`` have no
known levels; 8-bit modes such as L, P, LA, RGBA and CMYK are fine). Other rejects: a
list line or a listed file leading outside the folder, including a symlink found by the
folder walk (``path outside folder``), a list line given twice (``duplicate path``: the
first line wins), a name that is not UTF-8 (``non-UTF-8 file name``), a bad '@' name, an
impossible date in it (30 February), lat/lon outside UTM's range, a UTM letter that is not
the latitude's band (``band letter inconsistent``: e.g. a southern letter on a northern
point), a missing or unreadable file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from vgdata import geo, utm_input
from vgdata.errors import UsageError
from vgdata.schema import IMAGES, PANORAMAS, REJECTS, from_columns
from vgdata.sources.common import (
    RGB_CONVERTIBLE,
    add_reject,
    decode_errors,
    exif_orientation,
    image_id,
    new_rejects,
    safe_relative,
    scan_images,
    unsupported_mode_detail,
)
from vgdata.sources.panoramas import write_shard_tables


def paths_file(folder: Path) -> Path:
    """CosPlace's list file for a folder: ``<folder>_images_paths.txt`` beside it."""
    return folder.parent / f"{folder.name}_images_paths.txt"


def list_images(folder: Path, collection: str) -> tuple[list[str], pa.Table]:
    """Relative paths to import (in CosPlace's order) and the rejected list entries."""
    if not folder.is_dir():
        raise UsageError(f"images folder not found: {folder}")
    listing = paths_file(folder)
    rej = new_rejects()
    if not listing.is_file():
        paths, refused = scan_images(folder)
        for path, reason, detail in refused:
            add_reject(rej, collection, "image", path, None, reason, detail)
        return paths, from_columns(REJECTS, rej)
    paths = []
    first: dict[str, int] = {}
    data = listing.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        data = data[3:]
    for i, raw in enumerate(data.splitlines()):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            detail = "the listed name's bytes are not UTF-8 (shown with \\x escapes); rename the file to UTF-8"
            shown = raw.decode("utf-8", "backslashreplace").strip()
            add_reject(rej, collection, "image", str(listing), i + 1, "non-UTF-8 file name", f"{shown!r}: {detail}")
            continue
        if not line.strip():
            continue
        rel = safe_relative(folder, line)
        if rel is None:
            detail = f"{line.strip()!r} is not inside {folder}"
            add_reject(rej, collection, "image", str(listing), i + 1, "path outside folder", detail)
        elif rel in first:
            detail = f"{rel!r} already listed on line {first[rel]}"
            add_reject(rej, collection, "image", str(listing), i + 1, "duplicate path", detail)
        else:
            first[rel] = i + 1
            paths.append(rel)
    return paths, from_columns(REJECTS, rej)


def describe(config) -> dict:
    """The inputs, for the build's plan key."""
    return {"images": str(config.images.resolve())}


def plan(config, cat) -> tuple[list[tuple[str, dict]], pa.Table, str]:
    """Shards of paths to probe, rejected list entries, and the image root (the folder itself)."""
    from vgdata.jobs import cut_shards

    paths, rejects = list_images(config.images, config.collection)
    size = config.shard_size * 64  # header probes are ~100x cheaper than cropping a panorama
    root = str(config.images.resolve())
    return cut_shards(cat.root, config.collection, paths, size, {"folder": root}), rejects, root


def probe_header(full: Path) -> tuple[int, int] | tuple[str, str]:
    """``(width, height)`` of an image imported in place, read from its header, or ``(reason, detail)``.

    The reasons: ``file not found``, ``unreadable image``, ``unsupported pixel mode`` (16-bit
    greyscale would read as white; ``I``/``F`` have no known levels) and ``EXIF-rotated image``
    (it would be read on its side: imports are used as they are, read without turning).
    """
    from PIL import Image

    try:
        with Image.open(full) as im:
            width, height = im.size
            mode, orientation = im.mode, exif_orientation(im)
    except FileNotFoundError:
        return "file not found", str(full)
    except decode_errors() as e:
        return "unreadable image", f"{type(e).__name__}: {e}"
    if mode not in RGB_CONVERTIBLE:
        detail = unsupported_mode_detail(mode)
        if mode.startswith("I;16"):
            detail = f"mode {mode}: 16-bit greyscale is imported in place and would read as white; convert it to 8-bit"
        return "unsupported pixel mode", detail
    if orientation != 1:
        return "EXIF-rotated image", (
            f"EXIF orientation {orientation}: images are imported in place and read without turning; "
            "rotate the pixels and drop the tag first (e.g. exiftran -ai, or build from the raw photos)"
        )
    return width, height


def probe_tables(payload: dict) -> dict[str, pa.Table]:
    """Parse the names of one shard of images and read their headers: its images, panoramas, rejects tables.

    ``payload``: ``catalog``, ``collection``, ``shard``, ``folder``, ``items`` (relative paths).
    """
    from vgdata.names import NameFormatError, parse_name

    collection, folder = payload["collection"], Path(payload["folder"])
    img: dict[str, list] = {f.name: [] for f in IMAGES}
    rej = new_rejects()

    def reject(path: str, reason: str, detail: str) -> None:
        add_reject(rej, collection, "image", path, None, reason, detail)

    for rel in payload["items"]:
        full = folder / rel
        try:
            n = parse_name(rel)
        except NameFormatError as e:
            reject(str(full), "bad name", str(e))
            continue
        # Zone-less names (Nordland's dummy UTM) keep null lat/lon/zone; the rest must be valid.
        bad = None
        if n.latitude is not None:
            bad = geo.invalid_latlon_reasons(np.array([n.latitude]), np.array([n.longitude]))[0]
        if bad is not None:
            reject(str(full), "lat/lon out of range", bad)
            continue
        if n.letter is not None and n.latitude is not None:
            mismatch = utm_input.band_letter_mismatch(n.latitude, n.letter)
            if mismatch is not None:  # a letter of the wrong band, or the wrong hemisphere
                reject(str(full), "band letter inconsistent", mismatch)
                continue
        probed = probe_header(full)
        if isinstance(probed[0], str):
            reject(str(full), *probed)
            continue
        width, height = probed
        row = {
            "image_id": image_id(collection, rel),
            "path": rel,
            "collection": collection,
            "pano_id": n.pano_id or None,
            "tile": n.tile_num,
            "lat": n.latitude,
            "lon": n.longitude,
            "utm_east": n.east,
            "utm_north": n.north,
            "utm_zone": n.zone,
            "utm_letter": n.letter,
            "heading": n.heading_deg,
            "pitch": n.pitch_deg,
            "roll": n.roll_deg,
            "altitude": n.altitude_m,
            "timestamp": n.timestamp or None,
            "year": n.year,
            "month": n.month,
            "width": width,
            "height_px": height,
        }
        for k in img:
            img[k].append(row.get(k))  # utm_epsg is left to from_columns, which derives it
    return {
        "images": from_columns(IMAGES, img),
        "panoramas": PANORAMAS.empty_table(),
        "rejects": from_columns(REJECTS, rej),
    }


def probe_shard(payload: dict) -> dict:
    """Probe one shard (:func:`probe_tables`) and write its parts."""
    return write_shard_tables(payload["catalog"], payload["collection"], payload["shard"], probe_tables(payload))


run_shard = probe_shard
