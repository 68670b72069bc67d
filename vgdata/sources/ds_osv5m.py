"""OpenStreetView-5M (Astruc et al. 2024): ``{train,test}.csv`` and the images under ``images/{train,test}/``.

Layout (FORMATS.md 2.6): the dataset ships its images as zips (``images/train/00.zip`` ...
``97.zip``, ``images/test/00.zip`` ... ``04.zip``) whose members are ``<id>.jpg``; its own
instructions extract each zip in place and delete it. Images are imported in place, so this
reader reads the **extracted** layout: every ``.jpg``/``.jpeg``/``.png`` anywhere under
``images/<split>/``, matched to its CSV row by file stem = ``id``. Zips are never opened nor
extracted here (extracting 5.1M files into the user's folder is the user's call): a zip still in
``images/<split>/`` is one ``zipped images`` reject ("unzip images/<split>/*.zip first"), and when
a split has zips and no extracted image at all its rows are not listed one by one.

Collections: ``train_database`` (``train.csv``; the training set and the natural gallery) and
``test_queries`` (``test.csv``; the benchmark's query set). OSV-5M's ``val`` is 10% of train drawn
by its own script (stratified by ``category``, which the CSV does not carry): not reproduced; use
``vgdata split-val``.

Mapping of the 32 CSV columns (read as text with the csv module, then typed):

* ``id`` -> ``pano_id`` (text; also the file stem); ``latitude``/``longitude`` -> ``lat``/``lon``
  (UTM recomputed per point: worldwide, so zones vary and the Norway/Svalbard exceptions apply);
* ``captured_at`` -> ``timestamp``: epoch milliseconds (an integer of 9 digits or more, ``.0``
  allowed) as UTC ``YYYYMMDD_hhmmss``, or any date form :func:`~vgdata.sources.common.canonical_timestamp`
  reads (ISO 8601); the text is also kept verbatim in ``osv5m_captured_at`` (the milliseconds);
* ``sequence`` -> ``sequence_id``; ``city`` -> ``city``; ``split`` = ``train``/``test``;
* **heading is null**: the dataset has no heading column;
* every other column -> ``osv5m_<name>`` with ``-`` as ``_``: text for the urls, names, ids and
  codes (``thumb_original_url``, ``country``, ``cell``, ``region``, ``sub_region``,
  ``unique_region``, ``unique_sub_region``, ``unique_city``, ``unique_country``,
  ``creator_username``, ``creator_id``); float64 for ``lon_bin``, ``lat_bin``, ``land_cover``,
  ``road_index``, ``drive_side``, ``climate``, ``soil``, ``dist_sea`` (the dataset's own loader
  reads them as floats; ``nan`` becomes null); int64 for the seven ``quadtree_10_*`` cell ids
  (``12.0`` accepted). An empty field is null everywhere.

Not kept: columns beyond the 32 (none in the published CSVs). Rejects: an image no row names
(``no metadata row``), a row whose image is absent (``file not found``), two images with one id
(``duplicate id``), a CSV without the columns (``bad metadata file``), a row with a missing field,
a non-numeric coordinate or a non-numeric value in a numeric column (``bad metadata row``), a zip
(``zipped images``), and the shared checks (``lat/lon out of range``, ``bad timestamp``...).
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.native import NativeCollection

NAME = "osv5m"

COLUMNS = (
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "captured_at", "lon_bin",
    "lat_bin", "cell", "region", "sub-region", "city", "land_cover", "road_index", "drive_side", "climate",
    "soil", "dist_sea", "quadtree_10_5000", "quadtree_10_25000", "quadtree_10_1000", "quadtree_10_50000",
    "quadtree_10_12500", "quadtree_10_500", "quadtree_10_2500", "unique_region", "unique_sub-region",
    "unique_city", "unique_country", "creator_username", "creator_id",
)  # fmt: skip
"""The 32 columns of train.csv / test.csv, in the published order."""

SHARED = {"id", "latitude", "longitude", "sequence", "city"}
"""Columns that go to catalog fields or shared attributes only (module docstring)."""
FLOATS = ("lon_bin", "lat_bin", "land_cover", "road_index", "drive_side", "climate", "soil", "dist_sea")
INTS = tuple(c for c in COLUMNS if c.startswith("quadtree_"))
TEXTS = tuple(c for c in COLUMNS if c not in SHARED and c not in FLOATS and c not in INTS)


def column_name(name: str) -> str:
    """The attribute column of a CSV column: ``osv5m_`` + the name with ``-`` as ``_``."""
    return "osv5m_" + name.replace("-", "_")


ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    (column_name(c), pa.float64() if c in FLOATS else pa.int64() if c in INTS else pa.string())
    for c in COLUMNS
    if c not in SHARED
]
"""OSV-5M's own columns (types in the module docstring), in the CSV's order."""

SPLITS = {"train": "train_database", "test": "test_queries"}
"""The dataset's split -> the catalog collection."""


def epoch_ms_timestamp(text: str) -> str | None:
    """``captured_at`` epoch milliseconds (``1489363200000``, ``1489363200000.0``) as UTC ``YYYYMMDD_hhmmss``.

    None when ``text`` is not an integer of 9 digits or more (then it is read as a date form, e.g. ISO).
    """
    s = text.strip()
    if s.endswith(".0"):
        s = s[:-2]
    if not (s.isdigit() and len(s) >= 9):
        return None
    t = datetime.fromtimestamp(int(s) // 1000, tz=UTC)
    return t.strftime("%Y%m%d_%H%M%S")


def _float(text: str) -> float | None:
    """A float column's value: None for an empty field or NaN; ValueError for text that is no number."""
    if not text.strip():
        return None
    v = float(text)
    return None if math.isnan(v) else v


def _int(text: str) -> int | None:
    """An integer column's value (``12`` or ``12.0``): None when empty; ValueError otherwise."""
    if not text.strip():
        return None
    v = float(text)
    if not v.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(v)


def _attrs(row: dict[str, str], split: str) -> dict[str, Any]:
    """The attribute values of one CSV row (ValueError naming the column when a number is malformed)."""
    out: dict[str, Any] = {"split": split, "city": row["city"] or None, "sequence_id": row["sequence"] or None}
    for c in TEXTS:
        out[column_name(c)] = row[c] if row[c] != "" else None
    for cols, conv in ((FLOATS, _float), (INTS, _int)):
        for c in cols:
            try:
                out[column_name(c)] = conv(row[c])
            except ValueError as e:
                raise ValueError(f"column {c}: {row[c]!r} is not a number ({e})") from None
    return out


def _images(root: Path, split: str, coll: NativeCollection) -> tuple[dict[str, str], list[Path]]:
    """``{id: path}`` of the extracted images of ``split`` (duplicates rejected) and its zips."""
    folder = root / "images" / split
    found: dict[str, str] = {}
    zips: list[Path] = []
    if not folder.is_dir():
        return found, zips
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix.lower() == ".zip":
            zips.append(p)
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = p.relative_to(root).as_posix()
        if p.stem in found:
            coll.rejects.append(("image", str(p), None, "duplicate id", f"id {p.stem!r} is also {found[p.stem]!r}"))
            continue
        found[p.stem] = rel
    return found, zips


def _read_split(root: Path, split: str) -> NativeCollection | None:
    """The collection of one split (None when its CSV is absent)."""
    csv_path = root / f"{split}.csv"
    if not csv_path.is_file():
        return None
    coll = NativeCollection(SPLITS[split])
    images, zips = _images(root, split, coll)
    for z in zips:
        detail = (
            f"images are read in place, not from zips: unzip images/{split}/*.zip first (each into images/{split}/)"
        )
        coll.rejects.append(("image", str(z), None, "zipped images", detail))
    list_missing = bool(images) or not zips  # only zips: the zip rejects say it all
    named: set[str] = set()
    src = csv_path.name
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            coll.rejects.append(("metadata", src, None, "bad metadata file", f"no column(s) {', '.join(missing)}"))
            return coll
        for i, row in enumerate(reader, start=1):
            pano = (row.get("id") or "").strip()
            named.add(pano)  # a bad row still names its image: one reject, not two
            if None in row.values() or None in row:
                coll.rejects.append(("metadata", src, i, "bad metadata row", "wrong number of fields"))
                continue
            try:
                lat, lon = float(row["latitude"]), float(row["longitude"])
                attrs = _attrs(row, split)
            except ValueError as e:
                coll.rejects.append(("metadata", src, i, "bad metadata row", str(e)))
                continue
            rel = images.get(pano)
            if rel is None:
                if list_missing:
                    detail = f"no image named {pano}.jpg (or .jpeg/.png) under images/{split}/"
                    coll.rejects.append(("metadata", src, i, "file not found", detail))
                continue
            ts = row["captured_at"].strip()
            coll.rows.append(
                {
                    "path": rel,
                    "source": src,
                    "row": i,
                    "pano_id": pano,
                    "lat": lat,
                    "lon": lon,
                    "heading": None,
                    "timestamp": (epoch_ms_timestamp(ts) or ts) if ts else None,
                    "attrs": attrs,
                }
            )
    for pano, rel in images.items():
        if pano not in named:
            coll.rejects.append(("image", str(root / rel), None, "no metadata row", f"no {src} row has id {pano!r}"))
    return coll


def read(root: Path) -> list[NativeCollection]:
    """The ``train_database`` and ``test_queries`` collections of an OSV-5M folder (module docstring)."""
    out = []
    for split in SPLITS:
        coll = _read_split(root, split)
        if coll is not None and (coll.rows or coll.rejects):
            out.append(coll)
    return out
