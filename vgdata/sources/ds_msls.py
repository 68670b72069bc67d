"""MSLS (Mapillary Street-Level Sequences): ``{train_val,test}/<city>/{query,database}/`` with per-side CSVs.

Layout (FORMATS.md 2.2): each ``train_val/<city>/<side>/`` holds ``images/<key>.jpg``, ``raw.csv``
(``key, lon, lat, ca, captured_at, pano``: lon before lat), ``postprocessed.csv`` (``key, easting,
northing, unique_cluster, control_panel, night, view_direction``), ``seq_info.csv`` (``key,
sequence_key, frame_number``) and ``subtask_index.csv`` (``all, s2w, w2s, o2n, n2o, d2n, n2d``).
``test/<city>/<side>/`` has no ``raw.csv``/``postprocessed.csv``: its images are imported without
positions, heading, time or panorama flag. Every CSV starts with an unnamed index column; all
values are read as text. The files are joined on ``key``; a ``subtask_index.csv`` without a
``key`` column (as ``msls.py`` reads it, by position) is joined on its index column, which
matches ``seq_info.csv``'s index column.

Collections: ``<split>_<role>`` with role ``queries`` (``query/``) or ``database``, and
``<split>_<role>_pano`` for the frames whose ``pano`` is True, kept apart so that the official
protocol (panoramas excluded on both sides, 25 m) is ``eval_set(..., database="val_database",
queries="val_queries")``. Split: ``test/`` cities are ``test``; ``train_val/`` cities are ``val``
for ``cph`` and ``sf`` and ``train`` otherwise (the 22 train cities of ``msls.py``, and also any
city in neither list, which ``msls.py`` would not load by default).

Mapping (catalog column <- MSLS field):

* ``path`` = ``<train_val|test>/<city>/<side>/images/<key>.jpg``; ``pano_id`` = ``key`` (text);
* ``lat``/``lon`` = ``raw.csv`` lat/lon (UTM recomputed per point: zone and hemisphere per city,
  southern cities such as nairobi with the 10,000,000 m false northing); ``heading`` = ``ca``
  (compass angle, degrees clockwise from north; null when empty); ``timestamp`` = ``captured_at``
  (``YYYY-MM-DD`` or ISO 8601 -> ``YYYYMMDD[_hhmmss]``);
* attributes (vgdata/schema.py ATTRIBUTES): ``split``, ``city`` (the folder name), ``is_pano`` =
  ``pano``, ``source_east``/``source_north`` = ``postprocessed.csv`` easting/northing verbatim
  (UTM metres without a zone: MSLS's own ground truth is computed on them, per city),
  ``night``, ``view_direction`` (``Forward``/``Backward``/``Sideways``, verbatim),
  ``sequence_id`` = ``sequence_key`` (text), ``frame`` = ``frame_number``;
* own columns (:data:`ATTRIBUTES`): ``msls_unique_cluster`` (text), ``msls_control_panel`` (bool,
  undocumented meaning) and ``msls_subtask_<name>`` (bool) for the seven subtask columns.

Booleans read ``True``/``False``/``1``/``0`` (any case). Not kept: the unnamed index column (a
row number; rejects cite the 1-based data row instead).

Rejects: a row whose image is missing (``file not found``), an image no CSV names (``no metadata
row``), a key absent from one of the side's CSVs (``missing metadata``), a value that does not
parse (non-numeric lat/lon/ca/easting/northing/frame_number, a flag that is not a boolean, an empty
or repeated key: ``bad metadata row``), a CSV without its columns (``bad metadata file``; its keys
then count as missing), and the shared checks (``lat/lon out of range``, ``bad timestamp``...).
Rejects found while reading a side are reported under its ``<split>_<role>`` collection.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.native import NativeCollection

NAME = "msls"
SUBTASKS = ("all", "s2w", "w2s", "o2n", "n2o", "d2n", "n2d")
"""``subtask_index.csv`` columns: all, summer->winter, winter->summer, old->new, new->old, day->night, night->day."""
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("msls_unique_cluster", pa.string()),
    ("msls_control_panel", pa.bool_()),
    *[(f"msls_subtask_{s}", pa.bool_()) for s in SUBTASKS],
]
"""MSLS's own columns; the rest of its fields are shared attributes (module docstring)."""

VAL_CITIES = ("cph", "sf")
TRAIN_CITIES = (
    "trondheim", "london", "boston", "melbourne", "amsterdam", "helsinki", "tokyo", "toronto", "saopaulo",
    "moscow", "zurich", "paris", "bangkok", "budapest", "austin", "berlin", "ottawa", "phoenix", "goa",
    "amman", "nairobi", "manila",
)  # fmt: skip
"""The train cities of ``msls.py`` (a ``train_val`` city in neither list is imported as train too)."""
TEST_CITIES = ("miami", "athens", "buenosaires", "stockholm", "bengaluru", "kampala")

COLUMNS = {
    "raw.csv": ("key", "lon", "lat", "ca", "captured_at", "pano"),
    "postprocessed.csv": ("key", "easting", "northing", "unique_cluster", "control_panel", "night", "view_direction"),
    "seq_info.csv": ("key", "sequence_key", "frame_number"),
    "subtask_index.csv": SUBTASKS,
}
"""The columns each CSV must have (besides the unnamed index column)."""
SIDES = (("query", "queries"), ("database", "database"))
"""MSLS side folder -> catalog role."""

_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


class _BadValue(ValueError):
    """A field that does not parse: ``(file, column, value, what it should be)``."""


def split_of(top: str, city: str) -> str:
    """The split of ``<top>/<city>``: test for ``test/``, val for cph and sf, train otherwise."""
    if top == "test":
        return "test"
    return "val" if city in VAL_CITIES else "train"


def read(root: Path) -> list[NativeCollection]:
    """The collections of an MSLS folder (the one holding ``train_val/`` and/or ``test/``)."""
    colls: dict[str, NativeCollection] = {}
    for top in ("train_val", "test"):
        base = root / top
        if not base.is_dir():
            continue
        for city_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for side, role in SIDES:
                folder = city_dir / side
                if folder.is_dir():
                    _read_side(root, folder, split_of(top, city_dir.name), role, city_dir.name, colls)
    return [colls[n] for n in sorted(colls) if colls[n].rows or colls[n].rejects]


def _coll(colls: dict[str, NativeCollection], name: str) -> NativeCollection:
    if name not in colls:
        colls[name] = NativeCollection(name)
    return colls[name]


def _read_csv(
    root: Path, path: Path, columns: tuple[str, ...], rejects: list
) -> tuple[list[str], list[dict[str, str]]] | None:
    """The header and rows of one CSV (text values), or None (and a ``bad metadata file`` reject)."""
    src = path.relative_to(root).as_posix()
    if not path.is_file():
        rejects.append(("metadata", src, None, "bad metadata file", "file not found"))
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        rejects.append(("metadata", src, None, "bad metadata file", f"unreadable: {e}"))
        return None
    missing = [c for c in columns if c not in fields]
    if missing:
        rejects.append(("metadata", src, None, "bad metadata file", f"no column(s) {', '.join(missing)}"))
        return None
    return fields, rows


def _keyed(src: str, rows: list[dict[str, str]], rejects: list) -> dict[str, tuple[int, dict[str, str]]]:
    """``key -> (1-based row, row)``; an empty or repeated key is a ``bad metadata row`` reject."""
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for i, row in enumerate(rows, start=1):
        key = (row.get("key") or "").strip()
        if not key:
            rejects.append(("metadata", src, i, "bad metadata row", "empty key"))
        elif key in out:
            rejects.append(("metadata", src, i, "bad metadata row", f"key {key} repeated (first at row {out[key][0]})"))
        else:
            out[key] = (i, row)
    return out


def _subtasks_by_key(
    src: str, fields: list[str], rows: list[dict[str, str]], seq_index: dict[str, str], rejects: list
) -> dict[str, tuple[int, dict[str, str]]]:
    """``subtask_index.csv`` rows by key: its own ``key`` column, else its index column matched to
    ``seq_info.csv``'s (``seq_index``: index value -> key), else the row position (1-based, as text)."""
    if "key" in fields:
        return _keyed(src, rows, rejects)
    index_col = fields[0] if fields[0] not in SUBTASKS else None
    out: dict[str, tuple[int, dict[str, str]]] = {}
    for i, row in enumerate(rows, start=1):
        index = (row.get(index_col) or "").strip() if index_col is not None else str(i)
        key = seq_index.get(index)
        if key is None:
            detail = f"index {index!r} matches no seq_info.csv row"
            rejects.append(("metadata", src, i, "bad metadata row", detail))
        else:
            out[key] = (i, row)
    return out


def _read_side(root: Path, folder: Path, split: str, role: str, city: str, colls: dict[str, NativeCollection]) -> None:
    """Read one ``<city>/<side>/`` folder into ``colls`` (rows and rejects)."""
    main = _coll(colls, f"{split}_{role}")
    rejects = main.rejects
    names = ("seq_info.csv", "subtask_index.csv") if split == "test" else tuple(COLUMNS)
    tables: dict[str, dict[str, tuple[int, dict[str, str]]]] = {}
    seq_index: dict[str, str] = {}
    for name in names:
        src = (folder / name).relative_to(root).as_posix()
        got = _read_csv(root, folder / name, COLUMNS[name], rejects)
        if got is None:
            tables[name] = {}
            continue
        fields, rows = got
        if name == "subtask_index.csv":
            tables[name] = _subtasks_by_key(src, fields, rows, seq_index, rejects)
        else:
            tables[name] = _keyed(src, rows, rejects)
        if name == "seq_info.csv":
            has_index = fields[0] not in COLUMNS[name]
            seq_index = {
                (r.get(fields[0]) or "").strip() if has_index else str(i): (r.get("key") or "").strip()
                for i, r in enumerate(rows, start=1)
            }
    keys: dict[str, None] = {}
    for table in tables.values():
        keys.update(dict.fromkeys(table))
    images = folder / "images"
    for key in keys:
        present = [n for n in names if key in tables[n]]
        first = present[0]
        src, row_no = (folder / first).relative_to(root).as_posix(), tables[first][key][0]
        absent = [n for n in names if key not in tables[n]]
        if absent:
            detail = f"key {key} is in {', '.join(present)} but not in {', '.join(absent)}"
            rejects.append(("metadata", src, row_no, "missing metadata", detail))
            continue
        try:
            row = _row(key, {n: tables[n][key][1] for n in names}, split, city)
        except _BadValue as e:
            bad_file, column, value, wanted = e.args
            where = (folder / bad_file).relative_to(root).as_posix()
            detail = f"key {key}: {column} {value!r} is not {wanted}"
            rejects.append(("metadata", where, tables[bad_file][key][0], "bad metadata row", detail))
            continue
        row["path"] = (images / f"{key}.jpg").relative_to(root).as_posix()
        row["source"], row["row"] = src, row_no
        target = main if not row["attrs"].get("is_pano") else _coll(colls, f"{split}_{role}_pano")
        target.rows.append(row)
    if images.is_dir():
        for p in sorted(images.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.stem not in keys:
                rejects.append(
                    ("image", str(p), None, "no metadata row", f"no CSV of {folder.name}/ names key {p.stem}")
                )


def _bool(file: str, row: dict[str, str], column: str) -> bool:
    text = (row.get(column) or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _BadValue(file, column, row.get(column), "a boolean (True, False, 1, 0)")


def _float(file: str, row: dict[str, str], column: str, *, optional: bool = False) -> float | None:
    text = (row.get(column) or "").strip()
    if optional and not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise _BadValue(file, column, row.get(column), "a number") from None


def _int(file: str, row: dict[str, str], column: str) -> int:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and -(2**31) <= value < 2**31):  # the catalog's frame is int32
        raise _BadValue(file, column, row.get(column), "an integer")
    return int(value)


def _row(key: str, by_file: dict[str, dict[str, str]], split: str, city: str) -> dict[str, Any]:
    """One image's catalog fields and attributes from its joined CSV rows; raises _BadValue."""
    seq, sub = by_file["seq_info.csv"], by_file["subtask_index.csv"]
    attrs: dict[str, Any] = {
        "split": split,
        "city": city,
        "sequence_id": (seq.get("sequence_key") or "").strip() or None,
        "frame": _int("seq_info.csv", seq, "frame_number"),
        **{f"msls_subtask_{s}": _bool("subtask_index.csv", sub, s) for s in SUBTASKS},
    }
    row: dict[str, Any] = {"pano_id": key, "attrs": attrs}
    if "raw.csv" not in by_file:  # test cities: no coordinates, heading, time or pano flag
        return row
    raw, post = by_file["raw.csv"], by_file["postprocessed.csv"]
    row["lat"], row["lon"] = _float("raw.csv", raw, "lat"), _float("raw.csv", raw, "lon")
    row["heading"] = _float("raw.csv", raw, "ca", optional=True)
    row["timestamp"] = (raw.get("captured_at") or "").strip() or None
    attrs["is_pano"] = _bool("raw.csv", raw, "pano")
    attrs["source_east"] = _float("postprocessed.csv", post, "easting", optional=True)
    attrs["source_north"] = _float("postprocessed.csv", post, "northing", optional=True)
    attrs["night"] = _bool("postprocessed.csv", post, "night")
    attrs["view_direction"] = (post.get("view_direction") or "").strip() or None
    attrs["msls_unique_cluster"] = (post.get("unique_cluster") or "").strip() or None
    attrs["msls_control_panel"] = _bool("postprocessed.csv", post, "control_panel")
    return row
