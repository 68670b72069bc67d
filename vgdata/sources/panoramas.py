"""Raw equirectangular panoramas plus a metadata CSV -> SF-XL strip crops.

The CSV needs ``pano_id, lat, lon, heading, timestamp``; ``pitch, roll, altitude``
(degrees, degrees, metres) and ``path`` (the image file relative to the panoramas
folder; default ``<pano_id>.jpg``) are optional. ``heading`` is the azimuth of the
panorama's centre column, degrees clockwise from north.

Validation happens twice: the CSV rows here, in one vectorised pass (missing or
non-numeric values, NaN heading, lat/lon outside UTM's range, duplicate ``pano_id``
-- the first row wins --, unparseable or impossible timestamp such as 30 February, a
path outside the folder, including the default ``<pano_id>.jpg`` when it is a symlink
leading out; text that is not UTF-8); the image files in the crop workers (missing,
unreadable or truncated, wrong aspect ratio, too small to give ``n_crops`` distinct
crops, a pixel mode without known 8-bit levels). Every failure is a ``rejects`` row; the
rest is built.

Pixels: a panorama is first turned upright by its EXIF orientation (``ImageOps.exif_transpose``;
the 2:1 check applies to the upright size), then made 8-bit RGB (``sources.common.rgb8``:
16-bit greyscale scaled 0..65535 -> 0..255, 8-bit modes converted, ``I``/``F`` refused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from vgdata import geo
from vgdata.catalog import table_digest
from vgdata.errors import UsageError
from vgdata.fsio import atomic_path, atomic_write_table
from vgdata.schema import IMAGES, PANORAMAS, REJECTS, from_columns
from vgdata.sources.common import (
    IMAGE_SUFFIXES,
    UnsupportedMode,
    add_reject,
    add_utm,
    canonical_timestamp,
    decode_errors,
    decode_rgb8,
    image_id,
    lat_folder,
    name_too_long,
    new_rejects,
    safe_relative,
    sfxl_name,
)

REQUIRED = ("pano_id", "lat", "lon", "heading", "timestamp")
OPTIONAL_NUMERIC = ("pitch", "roll", "altitude")


@dataclass
class MetadataPlan:
    """Valid CSV rows (one dict per panorama, sorted by pano_id) and the rejected ones."""

    rows: list[dict]
    rejects: pa.Table
    csv_rows: int


def read_csv_text(csv_path: Path, what: str):
    """A CSV as a polars frame of strings, and whether it had to be decoded lossily.

    A file that is not valid UTF-8 is read again with the bad bytes replaced by U+FFFD
    (``lossy`` True), so that the rows holding them can be rejected one by one; a file that
    cannot be read even so is a one-line UsageError naming it.
    """
    import polars as pl

    try:
        return pl.read_csv(csv_path, infer_schema=False), False
    except Exception as e:  # polars raises several types for malformed CSVs
        first = e
    try:
        return pl.read_csv(csv_path, infer_schema=False, encoding="utf8-lossy"), True
    except Exception:
        raise UsageError(f"cannot read {what} {csv_path}: {str(first).splitlines()[0]}") from None


def lossy_cells(text: dict[str, list], i: int) -> list[str]:
    """The columns of row ``i`` whose text held bytes that were not UTF-8 (decoded as U+FFFD)."""
    return [c for c, values in text.items() if values[i] is not None and "\ufffd" in values[i]]


def read_metadata(csv_path: Path, pano_dir: Path, collection: str) -> MetadataPlan:
    """Read and validate the panorama metadata CSV (one-line UsageError if unusable as a whole)."""
    import polars as pl

    if not csv_path.is_file():
        raise UsageError(f"metadata CSV not found: {csv_path}")
    df, lossy = read_csv_text(csv_path, "metadata CSV")
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise UsageError(
            f"metadata CSV {csv_path} lacks required column(s) {', '.join(missing)} "
            f"(needs {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL_NUMERIC)}, path)"
        )
    n = df.height
    text = {c: df[c].to_list() for c in df.columns}
    nums = {
        c: df[c].str.strip_chars().cast(pl.Float64, strict=False).to_numpy().astype(np.float64)
        for c in ("lat", "lon", "heading", *OPTIONAL_NUMERIC)
        if c in df.columns
    }
    latlon_bad = geo.invalid_latlon_reasons(nums["lat"], nums["lon"])

    rows: list[dict] = []
    rej = new_rejects()
    seen: dict[str, int] = {}

    def reject(i: int, reason: str, detail: str) -> None:
        add_reject(rej, collection, "metadata", str(csv_path), i + 1, reason, detail)

    for i in range(n):
        pano_id = (text["pano_id"][i] or "").strip()
        bad_text = lossy_cells(text, i) if lossy else []
        if bad_text:
            cells = ", ".join(f"{c}={text[c][i]!r}" for c in bad_text)
            reject(i, "non-UTF-8 text", f"{cells} (bytes that are not UTF-8 shown as U+FFFD); save the CSV as UTF-8")
            continue
        blank = [c for c in REQUIRED if not (text[c][i] or "").strip()]
        if blank:
            reject(i, "missing value", f"empty {', '.join(blank)}")
            continue
        bad_num = [
            c
            for c in nums
            if (text[c][i] or "").strip() and np.isnan(nums[c][i]) and text[c][i].strip().lower() != "nan"
        ]
        if bad_num:
            reject(i, "non-numeric value", ", ".join(f"{c}={text[c][i]!r}" for c in bad_num))
            continue
        if np.isnan(nums["heading"][i]):
            reject(i, "NaN heading", f"heading={text['heading'][i]!r}")
            continue
        if latlon_bad[i] is not None:
            reject(i, "lat/lon out of range", latlon_bad[i])
            continue
        ts = canonical_timestamp(text["timestamp"][i])
        if ts is None:
            reject(
                i,
                "bad timestamp",
                f"timestamp={text['timestamp'][i]!r} (want YYYYMM[DD[_hhmmss]] or ISO 8601)",
            )
            continue
        if "@" in pano_id or "/" in pano_id or "\\" in pano_id:
            reject(i, "bad pano_id", f"pano_id={pano_id!r} contains '@' or a path separator")
            continue
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in pano_id):
            reject(i, "bad pano_id", f"pano_id={pano_id!r} contains a control character")
            continue
        if pano_id in seen:
            reject(i, "duplicate pano_id", f"pano_id={pano_id!r} first seen on row {seen[pano_id] + 1}")
            continue
        given = (text.get("path", [None] * n)[i] or "").strip()
        if given:
            rel = safe_relative(pano_dir, given)
            if rel is None:
                reject(i, "path outside folder", f"path={given!r} is not inside {pano_dir}")
                continue
        else:
            default = _default_path(pano_dir, pano_id)
            rel = safe_relative(pano_dir, default)
            if rel is None:  # <pano_id>.jpg is a symlink leading out of the folder (or '..'-like)
                reject(i, "path outside folder", f"{pano_dir / default} leads outside {pano_dir}; not followed")
                continue
        seen[pano_id] = i
        optional = {
            c: (float(nums[c][i]) if c in nums and not np.isnan(nums[c][i]) else None) for c in OPTIONAL_NUMERIC
        }
        rows.append(
            {
                "pano_id": pano_id,
                "source_path": rel,
                "lat": float(nums["lat"][i]),
                "lon": float(nums["lon"][i]),
                "heading": float(geo.wrap_heading(nums["heading"][i])),
                "timestamp": ts[0],
                "year": ts[1],
                "month": ts[2],
                **optional,
            }
        )
    rows.sort(key=lambda r: r["pano_id"])
    add_utm(rows)
    return MetadataPlan(rows=rows, rejects=from_columns(REJECTS, rej), csv_rows=n)


PROVENANCE = "provenance.json"
"""A JSON file beside the metadata CSV (``vgdata synth --footprints`` writes one: source data, licence,
frame); when present it is part of the collection's ``source`` in build.json, so the catalog says where
its geometry came from."""


def describe(config) -> dict:
    """The inputs, for the build's plan key: folders, the CSV's content hash and its provenance, if any."""
    import hashlib
    import json

    out = {
        "panoramas": str(config.panoramas.resolve()),
        "metadata": str(config.metadata.resolve()),
        "metadata_sha256": hashlib.sha256(config.metadata.read_bytes()).hexdigest(),
    }
    provenance = config.metadata.parent / PROVENANCE
    if provenance.is_file():
        try:
            out["provenance"] = json.loads(provenance.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise UsageError(f"{provenance} is not readable JSON ({e}); fix or remove it") from None
    return out


def plan(config, cat) -> tuple[list[tuple[str, dict]], pa.Table, str]:
    """Shards of valid CSV rows, the rejected rows, and the image root (relative to the catalog)."""
    from vgdata.jobs import cut_shards
    from vgdata.panorama import PanoramaError, check_strip_params

    try:
        check_strip_params(config.n_crops, config.step_deg)
    except PanoramaError as e:
        raise UsageError(str(e)) from None
    meta = read_metadata(config.metadata, config.panoramas, config.collection)
    common = {
        "pano_dir": str(config.panoramas.resolve()),
        "crop_root": str(cat.root / "crops" / config.collection),
        "quality": config.quality,
        "n_crops": config.n_crops,
        "step_deg": config.step_deg,
    }
    shards = cut_shards(cat.root, config.collection, meta.rows, config.shard_size, common)
    return shards, meta.rejects, f"crops/{config.collection}"


def _default_path(pano_dir: Path, pano_id: str) -> str:
    for suffix in IMAGE_SUFFIXES[1:]:
        if (pano_dir / f"{pano_id}{suffix}").is_file() and not (pano_dir / f"{pano_id}.jpg").is_file():
            return f"{pano_id}{suffix}"
    return f"{pano_id}.jpg"


def crop_shard(payload: dict) -> dict:
    """Cut one shard of panoramas into SF-XL strip crops and write its three table parts.

    ``payload``: ``catalog``, ``collection``, ``shard``, ``pano_dir``, ``crop_root``,
    ``quality`` (JPEG, 1-95), ``n_crops``, ``step_deg`` and ``items`` (rows from read_metadata).
    Returns counts and the shard's content digest.
    """
    from vgdata.panorama import PanoramaError, PanoramaTooSmall, check_equirect, strip_crops

    collection = payload["collection"]
    pano_dir = Path(payload["pano_dir"])
    crop_root = Path(payload["crop_root"])
    img: dict[str, list] = {f.name: [] for f in IMAGES}
    pan: dict[str, list] = {f.name: [] for f in PANORAMAS}
    rej = new_rejects()
    made_dirs: set[Path] = set()

    for r in payload["items"]:
        src = pano_dir / r["source_path"]
        try:
            rgb = decode_rgb8(src, check=check_equirect)  # the ratio is checked from the header
        except FileNotFoundError:
            add_reject(rej, collection, "panorama", str(src), None, "file not found", str(src))
            continue
        except PanoramaError as e:
            add_reject(rej, collection, "panorama", str(src), None, e.reason, str(e))
            continue
        except UnsupportedMode as e:
            add_reject(rej, collection, "panorama", str(src), None, "unsupported pixel mode", str(e))
            continue
        except decode_errors() as e:
            add_reject(rej, collection, "panorama", str(src), None, "unreadable image", f"{type(e).__name__}: {e}")
            continue
        size = rgb.size
        try:
            crops = strip_crops(rgb, r["heading"], payload["n_crops"], payload["step_deg"])
            names = [sfxl_name(r, win.heading) for _, win in crops]
            if len(set(names)) < len(names):
                raise PanoramaTooSmall(
                    f"{size[0]}x{size[1]} panorama too small: its {len(names)} crops would share names "
                    f"(integer headings {sorted(math.floor(win.heading) for _, win in crops)})"
                )
        except PanoramaError as e:
            add_reject(rej, collection, "panorama", str(src), None, e.reason, str(e))
            continue
        too_long = name_too_long(names[0])
        if too_long:
            add_reject(rej, collection, "panorama", str(src), None, "name too long", too_long)
            continue

        folder = lat_folder(r["lat"])
        out_dir = crop_root / folder
        if out_dir not in made_dirs:
            out_dir.mkdir(parents=True, exist_ok=True)
            made_dirs.add(out_dir)
        for (crop, win), name in zip(crops, names, strict=True):
            with atomic_path(out_dir / name) as tmp:
                crop.save(tmp, format="JPEG", quality=payload["quality"])
            rel = f"{folder}/{name}"
            row = {**r, "image_id": image_id(collection, rel), "path": rel, "collection": collection}
            row.update(heading=win.heading, tile=None, width=win.size, height_px=win.size)
            for k in img:
                img[k].append(row.get(k))
        prow = {**r, "collection": collection, "width": size[0], "height_px": size[1]}
        for k in pan:
            pan[k].append(prow.get(k))

    tables = {
        "images": from_columns(IMAGES, img),
        "panoramas": from_columns(PANORAMAS, pan),
        "rejects": from_columns(REJECTS, rej),
    }
    return write_shard_tables(payload["catalog"], collection, payload["shard"], tables)


run_shard = crop_shard


def write_shard_tables(catalog: str, collection: str, shard: str, tables: dict[str, pa.Table]) -> dict:
    """Write a shard's parts (``<table>/<collection>-<shard>.parquet``) and return its stats."""
    from vgdata.catalog import Catalog, combine_digests

    cat = Catalog(catalog)
    digests = {}
    for name, table in tables.items():
        atomic_write_table(cat.part_path(name, collection, shard), table)
        digests[name] = table_digest(table)
    return {
        "images": tables["images"].num_rows,
        "panoramas": tables["panoramas"].num_rows,
        "rejects": tables["rejects"].num_rows,
        "digest": combine_digests(digests.items()),
    }
