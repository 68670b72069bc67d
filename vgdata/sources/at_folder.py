"""Import an existing folder of '@'-named images (CosPlace, VPR-datasets-downloader, SF-XL).

The images are not copied: ``path`` is relative to the imported folder, which becomes
the collection's image root. The file list is ``<DIR>_images_paths.txt`` when that file
exists next to the folder (CosPlace's convention; its order is kept), otherwise every
``.jpg``/``.jpeg``/``.png`` below the folder in sorted order. Metadata comes from the
file name only (parsed once, here): UTM and heading verbatim from fields 1-4 and 9.
Width and height are read from the image header; pixels are not decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from vgdata import geo
from vgdata.errors import UsageError
from vgdata.schema import IMAGES, PANORAMAS, REJECTS, from_columns
from vgdata.sources.common import add_reject, image_id, new_rejects, safe_relative
from vgdata.sources.common import list_images as list_image_files
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
        return list_image_files(folder), from_columns(REJECTS, rej)
    paths = []
    for i, line in enumerate(listing.read_text().splitlines()):
        if not line.strip():
            continue
        rel = safe_relative(folder, line)
        if rel is None:
            detail = f"{line.strip()!r} is not inside {folder}"
            add_reject(rej, collection, "image", str(listing), i + 1, "path outside folder", detail)
        else:
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


def probe_shard(payload: dict) -> dict:
    """Parse the names of one shard of images, read their headers, write its parts.

    ``payload``: ``catalog``, ``collection``, ``shard``, ``folder``, ``items`` (relative paths).
    """
    from PIL import Image

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
        try:
            with Image.open(full) as im:
                width, height = im.size
        except FileNotFoundError:
            reject(str(full), "file not found", str(full))
            continue
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            reject(str(full), "unreadable image", f"{type(e).__name__}: {e}")
            continue
        heading = n.heading_deg
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
            "heading": heading,
            "pitch": n.pitch_deg,
            "roll": n.roll_deg,
            "altitude": n.altitude_m,
            "timestamp": n.timestamp,
            "year": n.year,
            "month": n.month,
            "width": width,
            "height_px": height,
        }
        for k in img:
            img[k].append(row[k])
    tables = {
        "images": from_columns(IMAGES, img),
        "panoramas": PANORAMAS.empty_table(),
        "rejects": from_columns(REJECTS, rej),
    }
    return write_shard_tables(payload["catalog"], collection, payload["shard"], tables)


run_shard = probe_shard
