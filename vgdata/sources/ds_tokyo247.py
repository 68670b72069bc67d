"""Tokyo 24/7 (Torii et al.): ``tokyo247.mat``, database folders ``03814``…``03829``, ``247query_subset_v2/``.

Layout (FORMATS.md 2.4): the NetVLAD ``dbStruct`` ``DIR/tokyo247.mat`` (or
``DIR/datasets/tokyo247.mat``; read by :mod:`vgdata.sources.matstruct`, fields by name) lists
the database; the queries are ``DIR/247query_subset_v2/*.jpg``, each with a sidecar
``<name>.csv`` whose first line is ``id, lat, lon, …``.

Collections: ``test_database`` and ``test_queries`` (Tokyo 24/7 is a test set; ``split`` = test).

Database rows: ``path`` = the ``dbImageFns`` name, relative to DIR. The names end in ``.jpg``
but the files are ``.png``: when the exact file is missing, a file with the same stem and
another image suffix is used, and the ``.mat`` name is kept in ``source_name`` (so
``count(source_name)`` over the database rows is how many were resolved by stem; it is null
where the name was exact). Position: UTM only (``utmDb``), inverted with zone 54, band S, and
kept verbatim in ``source_east``/``source_north``. From the name
``<22-char panorama id>_<code>_<yaw>.png``: ``pano_id`` = the 22 characters,
``tokyo247_yaw`` = yaw in degrees (000…330, relative: whether 0 is north is unverified, so
``heading`` is null) and ``tile`` = yaw / 30 (0..11), ``tokyo247_view_code`` = the constant
middle token (``012``) as text. A name of another form keeps its row with these left null.

Query rows: ``path`` = ``247query_subset_v2/<name>.jpg``; lat/lon from the sidecar's first line
(UTM recomputed, zone per point); ``tokyo247_query_id`` = its first field and
``tokyo247_query_fields`` = the rest of that line after lat and lon, verbatim. When the ``.mat``'s
``qImageFns`` names the query (same file name), its ``utmQ`` is kept in ``source_east``/
``source_north``. The ``.mat``'s radii go on every query row: ``tokyo247_pos_dist_thr``
(metres), ``tokyo247_pos_dist_sq_thr`` and ``tokyo247_non_triv_pos_dist_sq_thr`` (square
metres). No timestamp, heading or day/sunset/night flag is derived (none is in the files read).

Not kept: ``numImages``/``numQueries`` (checked), ``whichSet`` (the split is test), extra
struct fields. Evaluation protocol, not ground truth: the usual Tokyo evaluation keeps only the
first hit per panorama (index div 12) of ``N×12`` retrieved; it is not applied here (positives
are all database images within the eval set's threshold; ``pano_id`` allows the suppression).

Rejects: an unusable ``.mat`` (``bad metadata file``: its database is not built; filed on
``test_queries``); a name that is not text (``bad metadata row``); a named file missing under
both suffixes (``file not found``); an image in a ``0NNNN`` folder that the ``.mat`` does not
name (``no metadata row``); a query without a sidecar (``no metadata row``) or whose sidecar's
first line has no numeric lat/lon (``bad metadata row``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa

from vgdata.errors import UsageError
from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.matstruct import DbStruct, MatError, load_dbstruct, radius_attributes, radius_columns
from vgdata.sources.native import NativeCollection

NAME = "tokyo247"
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("tokyo247_yaw", pa.int16()),  # database: the name's yaw, degrees 0..330, relative (not a heading)
    ("tokyo247_view_code", pa.string()),  # database: the name's middle token ('012'), verbatim
    ("tokyo247_query_id", pa.string()),  # queries: the sidecar's id field, verbatim
    ("tokyo247_query_fields", pa.string()),  # queries: the sidecar line's fields after lat, lon, verbatim
    *radius_attributes("tokyo247"),  # the .mat's posDistThr (m), posDistSqThr, nonTrivPosDistSqThr (m^2): query rows
]

ZONE, LETTER = 54, "S"
QUERY_FOLDER = "247query_subset_v2"
_CUTOUT = re.compile(r"^(.{22})_(\d{3})_(\d{3})\.[A-Za-z]+$")
_THRESHOLD_COLUMNS = radius_columns("tokyo247")


def cutout_fields(name: str) -> dict:
    """``pano_id``, ``tile`` and attributes from a cutout name ``<22-char id>_<code>_<yaw>.<ext>`` (else nulls)."""
    m = _CUTOUT.match(name.rsplit("/", 1)[-1])
    if m is None:
        return {"pano_id": None, "tile": None, "attrs": {}}
    yaw = int(m.group(3))
    tile = yaw // 30 if yaw % 30 == 0 and 0 <= yaw < 360 else None
    return {"pano_id": m.group(1), "tile": tile, "attrs": {"tokyo247_yaw": yaw, "tokyo247_view_code": m.group(2)}}


def _on_disk(root: Path, name: str) -> str:
    """``name``, or the same stem with another image suffix when only that file exists."""
    if (root / name).is_file():
        return name
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    for suffix in (*IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES)):
        if (root / (stem + suffix)).is_file():
            return stem + suffix
    return name


def _database(root: Path, s: DbStruct, src: str, coll: NativeCollection) -> set[str]:
    named: set[str] = set()
    for i, (name, (east, north)) in enumerate(zip(s.db_names, s.utm_db, strict=True), start=1):
        if not name:
            coll.rejects.append(("metadata", src, i, "bad metadata row", f"image name {name!r} is not text"))
            continue
        name = name.replace("\\", "/")
        path = _on_disk(root, name)
        named.add(path)
        cut = cutout_fields(name)
        attrs = {"split": "test", "source_east": float(east), "source_north": float(north), **cut["attrs"]}
        if path != name:
            attrs["source_name"] = name
        coll.rows.append(
            {
                "path": path,
                "source": src,
                "row": i,
                "pano_id": cut["pano_id"],
                "tile": cut["tile"],
                "utm_east": float(east),
                "utm_north": float(north),
                "utm_zone": ZONE,
                "utm_letter": LETTER,
                "attrs": attrs,
            }
        )
    return named


def _queries(root: Path, s: DbStruct | None, coll: NativeCollection) -> None:
    folder = root / QUERY_FOLDER
    utm_q = {}
    radii: dict[str, float | None] = {}
    if s is not None:
        utm_q = {n.replace("\\", "/").rsplit("/", 1)[-1]: u for n, u in zip(s.q_names, s.utm_q, strict=True) if n}
        radii = {col: s.thresholds.get(f) for f, col in _THRESHOLD_COLUMNS.items()}
    for p in sorted(folder.glob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = p.relative_to(root).as_posix()
        sidecar = p.with_suffix(".csv")
        where = sidecar.relative_to(root).as_posix()
        if not sidecar.is_file():
            coll.rejects.append(("image", str(p), None, "no metadata row", f"no sidecar {sidecar.name}"))
            continue
        with sidecar.open(newline="", encoding="utf-8", errors="replace") as f:
            line = next(csv.reader(f), [])
        fields = [x.strip() for x in line]
        try:
            lat, lon = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            coll.rejects.append(("metadata", where, 1, "bad metadata row", f"first line {line!r}: no numeric lat, lon"))
            continue
        attrs = {
            "split": "test",
            "tokyo247_query_id": fields[0],
            "tokyo247_query_fields": ",".join(fields[3:]),
            **radii,
        }
        if p.name in utm_q:
            attrs["source_east"], attrs["source_north"] = (float(v) for v in utm_q[p.name])
        coll.rows.append({"path": rel, "source": where, "row": 1, "lat": lat, "lon": lon, "attrs": attrs})


def read(root: Path) -> list[NativeCollection]:
    """``test_database`` and ``test_queries`` of a Tokyo 24/7 folder (module docstring)."""
    mat = next((p for p in (root / "tokyo247.mat", root / "datasets" / "tokyo247.mat") if p.is_file()), None)
    if mat is None and not (root / QUERY_FOLDER).is_dir():
        return []
    db, q = NativeCollection("test_database"), NativeCollection("test_queries")
    s: DbStruct | None = None
    if mat is not None:
        src = mat.relative_to(root).as_posix()
        try:
            s = load_dbstruct(mat)
        except MatError as e:
            if not (root / QUERY_FOLDER).is_dir():
                raise UsageError(f"{mat}: {e}") from e
            q.rejects.append(("metadata", src, None, "bad metadata file", str(e)))
    if s is not None:
        named = _database(root, s, src, db)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{5}", p.name)):
            for p in sorted(folder.rglob("*")):
                rel = p.relative_to(root).as_posix()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and rel not in named:
                    db.rejects.append(("image", str(p), None, "no metadata row", f"{src} does not name this file"))
    if (root / QUERY_FOLDER).is_dir():
        _queries(root, s, q)
    return [c for c in (db, q) if c.rows or c.rejects]
