"""``vgdata export --format at-folder``: the VPR-datasets-downloader / CosPlace layout.

``DEST/<collection>/...`` for every image (``database/``, ``queries_v1/`` ...), as hard links when
source and destination share a file system (copies otherwise, or with ``copy=True``), plus
CosPlace's ``DEST/<collection>_images_paths.txt`` listing the files written (relative to
``DEST/<collection>``) in catalog (path) order. File names (``names``):

- ``keep``: the catalog's paths, folders included, so they are byte-identical to the imported or
  cut files.
- ``at``: every image gets an '@' name made from its catalog columns by
  :func:`vgdata.names.make_name` (UTM east/north to 0.01 m, zone, letter, lat/lon to 1e-5 degree,
  pano_id, tile, heading and pitch as floor() integers, timestamp; roll, altitude and note empty;
  the source file's extension), placed flat in ``DEST/<collection>/``.
- ``auto`` (default): paths whose file name already parses as an '@' name
  (:func:`vgdata.names.parse_name`) are kept as in ``keep``; the others get a made name as in ``at``.

An image that cannot get a name is not written and is reported in :attr:`ExportResult.rejects_by_reason`
(with the first examples in :attr:`ExportResult.reject_examples`): ``no UTM`` (no zone, letter, lat/lon
or finite east/north: e.g. Nordland's dummy coordinates), ``bad name field`` (a pano_id holding '@' or
'/', an impossible timestamp, a file without extension), and ``duplicate name``: two images of a
collection that map to one file name; the first (in path order) is written, the second is rejected,
never overwritten and never renamed.

``gsv-npy`` and ``vpr-bench`` export an eval set's ground truth instead: :mod:`vgdata.export_gt`.
``geoparquet`` writes the catalog as GeoParquet 1.1 for GIS tools: :mod:`vgdata.export_geo`.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.export_gt import GT_FORMATS, check_dest_outside
from vgdata.fsio import atomic_write_bytes
from vgdata.names import NameFormatError, is_at_name, make_name

FORMATS = ("at-folder", "geoparquet", *GT_FORMATS)
"""Every ``vgdata export --format``."""
NAME_MODES = ("auto", "keep", "at")
"""``--names`` of the at-folder format."""
EXAMPLES = 5
"""Rejected images listed per reason in :attr:`ExportResult.reject_examples`."""
_NAME_COLUMNS = (
    "utm_east", "utm_north", "utm_zone", "utm_letter", "lat", "lon", "pano_id", "tile", "heading", "pitch", "timestamp",
)  # fmt: skip


@dataclass
class ExportResult:
    dest: str
    files: dict[str, int]
    """Images written per collection (the lines of its ``_images_paths.txt``)."""
    linked: int
    copied: int
    named: int = 0
    """Images written under a made '@' name (``names`` at or auto)."""
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    """Images not written, per reason (no UTM, bad name field, duplicate name)."""
    reject_examples: list[str] = field(default_factory=list)
    """The first :data:`EXAMPLES` of each reason: ``<collection>/<path>: <reason> (<detail>)``."""


def export_catalog(
    catalog: str | Path,
    dest: str | Path,
    *,
    fmt: str = "at-folder",
    collections: list[str] | None = None,
    copy: bool = False,
    names: str = "auto",
) -> ExportResult:
    """Write the images of ``collections`` (default: all) under ``dest`` in the '@' folder layout.

    ``names``: ``auto``, ``keep`` or ``at`` (module docstring). Raises :class:`UsageError` for an
    unknown format, name mode or collection, and for a destination inside the catalog.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "geoparquet":
        raise UsageError("--format geoparquet is written by vgdata.export_geo.export_geoparquet")
    if fmt != "at-folder":
        raise UsageError(f"--format {fmt} exports an eval set: use vgdata.export_gt.export_eval_set (--eval-set NAME)")
    if names not in NAME_MODES:
        raise UsageError(f"unknown --names {names!r}; choose one of {', '.join(NAME_MODES)}")
    cat = Catalog(catalog)
    build = cat.require()
    wanted = collections or sorted(build["collections"])
    unknown = [c for c in wanted if c not in build["collections"]]
    if unknown:
        raise UsageError(f"no collection {', '.join(unknown)} in {cat.root}; have {', '.join(build['collections'])}")
    dest = Path(dest)
    check_dest_outside(cat.root, dest)
    con = cat.connect()
    result = ExportResult(dest=str(dest), files={}, linked=0, copied=0)
    try:
        for collection in wanted:
            root = cat.image_root(collection, build)
            cols = ", ".join(("path", *_NAME_COLUMNS))
            cursor = con.execute(f"select {cols} from images where collection = ? order by path", [collection])
            keys = [d[0] for d in cursor.description]
            rows = [dict(zip(keys, r, strict=True)) for r in cursor.fetchall()]
            written = _export_collection(rows, root, dest / collection, collection, names, copy, result)
            text = "".join(p + "\n" for p in written)
            atomic_write_bytes(dest / f"{collection}_images_paths.txt", text.encode())
            result.files[collection] = len(written)
    finally:
        con.close()
    return result


def at_name_for(row: dict[str, Any], extension: str) -> str:
    """The full '@' name of a catalog row (columns of ``_NAME_COLUMNS``) with ``extension`` (".jpg").

    Raises :class:`NameFormatError`: ``no UTM`` when the row lacks a zone, letter, lat/lon or finite
    UTM metres; any other message for a field the name cannot hold.
    """
    numbers = [row.get(k) for k in ("utm_east", "utm_north", "lat", "lon")]
    if (
        row.get("utm_zone") is None
        or not row.get("utm_letter")
        or any(v is None or not math.isfinite(v) for v in numbers)
    ):
        raise NameFormatError("no UTM", "utm_zone")
    if not extension:
        raise NameFormatError("the file has no extension", "extension")
    return make_name(
        utm_east=row["utm_east"], utm_north=row["utm_north"], utm_zone=int(row["utm_zone"]),
        utm_letter=row["utm_letter"], lat=row["lat"], lon=row["lon"], pano_id=row.get("pano_id") or "",
        tile=None if row.get("tile") is None else int(row["tile"]), heading=row.get("heading"),
        pitch=row.get("pitch"), timestamp=row.get("timestamp") or "", extension=extension,
    )  # fmt: skip


def _export_collection(
    rows: list[dict[str, Any]], root: Path, out: Path, collection: str, names: str, copy: bool, result: ExportResult
) -> list[str]:
    """Link or copy one collection's images; returns the written names (relative to ``out``) in row order."""
    made: set[Path] = set()
    taken: set[str] = set()
    written: list[str] = []
    for row in rows:
        rel = row["path"]
        target = rel
        renamed = names == "at" or (names == "auto" and not is_at_name(rel))
        if renamed:
            try:
                target = at_name_for(row, PurePosixPath(rel).suffix)
            except NameFormatError as e:
                reason = "no UTM" if str(e) == "no UTM" else "bad name field"
                _reject(result, collection, rel, reason, "" if reason == "no UTM" else str(e))
                continue
        if target in taken:
            _reject(result, collection, rel, "duplicate name", target)
            continue
        taken.add(target)
        result.named += renamed
        src, dst = root / rel, out / target
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        written.append(target)
        if dst.exists():
            if dst.stat().st_size == src.stat().st_size:
                continue
            dst.unlink()
        if not copy:
            try:
                os.link(src, dst)
                result.linked += 1
                continue
            except OSError:
                pass
        shutil.copyfile(src, dst)
        result.copied += 1
    return written


def _reject(result: ExportResult, collection: str, path: str, reason: str, detail: str) -> None:
    seen = result.rejects_by_reason.get(reason, 0)
    result.rejects_by_reason[reason] = seen + 1
    if seen < EXAMPLES:
        result.reject_examples.append(f"{collection}/{path}: {reason}" + (f" ({detail})" if detail else ""))
