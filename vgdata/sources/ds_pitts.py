"""Pittsburgh 30k/250k (Arandjelović et al., NetVLAD): ``datasets/pitts{30k,250k}_{train,val,test}.mat``.

Layout (FORMATS.md 2.3): database images under ``000/`` … ``010/``, queries under
``queries_real/``, one NetVLAD ``dbStruct`` per variant and split in ``DIR/datasets/`` (read by
:mod:`vgdata.sources.matstruct`, fields by name). Every such file found is imported.

Collections: ``<variant>_<split>_database`` and ``<variant>_<split>_queries``, e.g.
``pitts30k_test_database``, ``pitts250k_val_queries``. The variant prefix is needed because
30k and 250k of one split are different image sets (the 30k test database is 10,000 of the
250k test database's ~84,000 images) and both fit in one catalog; the split is also the
``split`` attribute (the file's ``whichSet``, else the file name's).

Per image: ``path`` = the ``dbImageFns`` name (relative to DIR, e.g. ``000/000829_pitch1_yaw1.jpg``)
or ``queries_real/`` + the ``qImageFns`` name. Position: the ``.mat`` has UTM only, inverted with
zone 17, band T (easting/northing also kept verbatim in ``source_east``/``source_north``).
``heading`` null: the yaw index is relative to the capture, not to north. From the name
``<place:06d>_pitch<p>_yaw<y>.jpg`` (the ``.mat`` has no such fields): ``pano_id`` and
``place_id`` = the place digits as written (``"000829"``; the 24 views of a place are cut from
one Street View panorama; query places are numbered on their own, so query place k is not
database place k); ``pitts_pitch`` = p (1..2), ``pitts_yaw`` = y (1..12) and ``tile`` =
(p-1)*12 + (y-1) in 0..23. (DVG's ``tile_num`` is (p-1)*24 + (y-1): 0..11 and 24..35.) A name
of another form keeps its row with these left null.

Own columns: ``pitts_pitch``, ``pitts_yaw`` (int), ``pitts_pos_dist_thr`` (metres),
``pitts_pos_dist_sq_thr`` and ``pitts_non_triv_pos_dist_sq_thr`` (square metres): the ``.mat``'s
radii, on its query rows (the eval-set threshold stays a parameter: ``--threshold 25``).
Not kept: ``numImages``/``numQueries`` (checked, equal to the counts) and any extra struct field
(e.g. ``dataset``: the variant name, already in the collection name).

Rejects: a ``.mat`` that cannot be used (unreadable, v7.3, missing fields, a count that disagrees
with its list): one ``bad metadata file`` reject and none of its collections (the reject is
filed under the first usable collection; with none usable the import stops with that message);
a name that is not text (``bad metadata row``); a named file that is missing (``file not
found``); an image under ``000/``…``010/`` (on the first database collection) or
``queries_real/`` (on the first queries collection) that no ``.mat`` names (``no metadata row``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from vgdata.errors import UsageError
from vgdata.sources.common import IMAGE_SUFFIXES
from vgdata.sources.matstruct import MatError, load_dbstruct, radius_attributes, radius_columns
from vgdata.sources.native import NativeCollection

NAME = "pitts"
PREFIX = ""
"""No collection prefix: the names already say pitts30k / pitts250k."""
ATTRIBUTES: list[tuple[str, pa.DataType]] = [
    ("pitts_pitch", pa.int16()),  # pitch index of the view, 1..2 (from the name)
    ("pitts_yaw", pa.int16()),  # yaw index of the view, 1..12, relative to the capture (from the name)
    *radius_attributes("pitts"),  # the .mat's posDistThr (m), posDistSqThr, nonTrivPosDistSqThr (m^2): query rows
]

ZONE, LETTER = 17, "T"
QUERY_FOLDER = "queries_real"
_MAT = re.compile(r"^(pitts(?:30k|250k))_(train|val|test)\.mat$")
_VIEW = re.compile(r"^(\d+)_pitch(\d+)_yaw(\d+)\.jpg$")
_THRESHOLD_COLUMNS = radius_columns("pitts")


def view_fields(name: str) -> dict:
    """``pano_id``, ``tile`` and the attributes a view name ``<place>_pitch<p>_yaw<y>.jpg`` gives (else nulls)."""
    m = _VIEW.match(name.rsplit("/", 1)[-1])
    if m is None:
        return {"pano_id": None, "tile": None, "attrs": {}}
    place, pitch, yaw = m.group(1), int(m.group(2)), int(m.group(3))
    tile = (pitch - 1) * 12 + (yaw - 1) if 1 <= pitch <= 2 and 1 <= yaw <= 12 else None
    return {"pano_id": place, "tile": tile, "attrs": {"place_id": place, "pitts_pitch": pitch, "pitts_yaw": yaw}}


def _rows(names, utm, split: str, src: str, prefix: str, coll: NativeCollection, extra: dict) -> set[str]:
    """Fill ``coll`` with one row per name; returns the paths named."""
    named: set[str] = set()
    for i, (name, (east, north)) in enumerate(zip(names, utm, strict=True), start=1):
        if not name:
            coll.rejects.append(("metadata", src, i, "bad metadata row", f"image name {name!r} is not text"))
            continue
        path = prefix + name.replace("\\", "/")
        named.add(path)
        view = view_fields(path)
        attrs = {"split": split, "source_east": float(east), "source_north": float(north), **extra, **view["attrs"]}
        coll.rows.append(
            {
                "path": path,
                "source": src,
                "row": i,
                "pano_id": view["pano_id"],
                "tile": view["tile"],
                "utm_east": float(east),
                "utm_north": float(north),
                "utm_zone": ZONE,
                "utm_letter": LETTER,
                "attrs": attrs,
            }
        )
    return named


def read(root: Path) -> list[NativeCollection]:
    """The collections of every ``datasets/pitts*_{train,val,test}.mat`` under ``root`` (module docstring)."""
    mats = (
        sorted(p for p in (root / "datasets").glob("*.mat") if _MAT.match(p.name))
        if (root / "datasets").is_dir()
        else []
    )
    if not mats:
        return []
    collections: list[NativeCollection] = []
    bad: list[tuple[str, str, int | None, str, str]] = []
    named_db: set[str] = set()
    named_q: set[str] = set()
    for mat in mats:
        variant, split_from_name = _MAT.match(mat.name).groups()
        src = mat.relative_to(root).as_posix()
        try:
            s = load_dbstruct(mat)
        except MatError as e:
            bad.append(("metadata", src, None, "bad metadata file", str(e)))
            continue
        split = s.which_set.strip() if s.which_set and s.which_set.strip() else split_from_name
        db = NativeCollection(f"{variant}_{split_from_name}_database")
        q = NativeCollection(f"{variant}_{split_from_name}_queries")
        named_db |= _rows(s.db_names, s.utm_db, split, src, "", db, {})
        radii = {col: s.thresholds.get(f) for f, col in _THRESHOLD_COLUMNS.items()}
        named_q |= _rows(s.q_names, s.utm_q, split, src, f"{QUERY_FOLDER}/", q, radii)
        collections += [db, q]
    if not collections:
        raise UsageError(
            f"no usable Pittsburgh .mat in {root / 'datasets'}: " + "; ".join(f"{b[1]}: {b[4]}" for b in bad)
        )
    collections[0].rejects.extend(bad)
    dbs = [c for c in collections if c.name.endswith("_database")]
    qs = [c for c in collections if c.name.endswith("_queries")]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{3}", p.name))
    _unnamed(root, folders, named_db, dbs[0])
    _unnamed(root, [root / QUERY_FOLDER], named_q, qs[0])
    return collections


def _unnamed(root: Path, folders: list[Path], named: set[str], coll: NativeCollection) -> None:
    """A ``no metadata row`` reject on ``coll`` for each image under ``folders`` that no ``.mat`` names."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and rel not in named:
                coll.rejects.append(
                    ("image", str(p), None, "no metadata row", "no datasets/pitts*.mat names this file")
                )
